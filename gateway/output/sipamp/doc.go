// Package sipamp pages through SIP calls: paging amplifiers and SIP
// speakers (Algo, CyberData), paging gateways (Bogen Nyquist, Valcom) and
// ATAs in front of analogue paging controllers (Bogen UTI312).
//
// An Output places a call to its configured URI with its preset's
// auto-answer headers (README.md lists them), answers a digest challenge
// with the configured credentials, waits for the answer (answer_timeout),
// waits settle, sends the zone code as DTMF (RFC 4733 events by default,
// in-band tones for G.711 paths, or SIP INFO application/dtmf-relay),
// waits after_code, plays the page in the negotiated codec and hangs up.
// A busy, rejecting or silent device is an error, retried output.retry
// times. Cutting a page (ctx) returns at once: a ringing call is
// CANCELled and an answered one ended with a BYE on a goroutine the
// Output owns (Close waits for them).
//
// Calls go through the appliance's one SIP stack (internal/sipstack) and
// RTP engine (internal/media), both handed in by the wiring. It implements
// gateway/output.Output and imports nothing of gateway but that leaf; its
// Factory is the output.Factory for config type sip.
package sipamp
