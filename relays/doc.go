// Package relays drives the GPIO relays that go with pages: one relay per
// zone (zone select, on while that zone is paged) and "page active" relays
// (amplifier enable, background-music mute, radio push-to-talk: on while any
// page plays).
//
// A Bank owns the relays of one config. The gateway's zone player calls
// Acquire before a page's audio starts: the page-active relays and the
// zones' relays close, and Acquire returns once the longest lead time has
// passed (amplifiers unmute, relays pull in, VOX settles). When the audio
// ends it calls Lease.Release: each relay opens after its hold time, unless
// another page still uses it or a new page takes it during the hold. Relays
// are reference counted, so overlapping pages on shared relays keep them
// closed until the last page's hold ends.
//
// # Safe state
//
// Safe state is every relay de-energised (open): a page is never latched on.
//   - Start: New drives every configured pin off before anything else.
//   - Stop: Close cancels pending holds and drives every pin off.
//   - Reload: Bank.Reload applies the new config in place (the gateway's
//     LeaseRelays adapter stays valid): removed, rewired and new relays are
//     driven off at once; unchanged relays held by a page playing through
//     the reload stay on until that page releases them.
//   - Crash: the kernel releases the GPIO character-device lines of the
//     dead process, but a released line keeps its last level on most
//     controllers (the Raspberry Pi's included), so a relay that was on
//     stays on until something drives it off. On the gokrazy image (no
//     shell, no stop hooks) the supervisor restarts the binary shortly
//     after, and its first act is New, which drives every pin off.
//     On a Debian install, systemd does the same with Restart=always, and
//     ExecStopPost=/usr/local/bin/parkpage relays-off -config <file> runs
//     AllOff after every exit (clean, crash or watchdog kill) before any
//     restart. An installer can run `parkpage relays-off` by hand too.
//
// Wire relays so that de-energised means "no page" (normally-open contacts
// for page-active and zone select, board pull resistors towards the off
// level): then a dead process, a released line or an unpowered board all
// end the page. With active-low relay boards, note that periph's GPIO
// driver claims a line as an output at level low for a few microseconds
// before setting the requested level; electromechanical relays need
// milliseconds to pull in and ignore it, but a fast solid-state relay or an
// opto-isolated input may see a glitch: prefer active-high boards for those.
//
// The package knows pins only as periph.io gpio.PinOut: HostResolver finds
// them on a real board (periph host drivers, GPIO character device), and
// tests inject periph's gpiotest pins.
package relays
