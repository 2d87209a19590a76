// Package multicast sends paging audio to multicast groups: Sender owns a
// socket configured for one output (group, port, interface, TTL, loopback);
// Pacer sends the packets of many streams on time from one real-time thread;
// PolycomOutput and RTPOutput play a page of pre-encoded 20 ms frames in the
// Polycom group-paging and RTP formats (subpackages polycom and rtp, which
// are pure encoders and must not import this package). Outputs makes the
// zone outputs of config types polycom and rtp: they implement
// gateway/output.Output (page priority picks the Polycom channel, live
// pages stream through the Pacer) and share one socket per interface, TTL
// and loopback. Subpackage netif picks the interface when none is
// configured. The package imports gateway/output, never gateway.
//
// Pacing follows docs/pacing.md: Go's timers wake with about a millisecond of
// slack and share the Ps with everything else, so the Pacer runs one loop on
// a locked OS thread that sleeps on an absolute CLOCK_MONOTONIC timerfd, sends
// every due packet of every stream per wake-up with sendmmsg, and asks for
// SCHED_FIFO (granted to root or CAP_SYS_NICE; it logs once and carries on at
// normal priority otherwise). Packet k of a stream is due at start + its own
// offset, so errors never accumulate. Under SCHED_FIFO the loop also wakes a
// little early, by its own measured timer latency, and polls the clock up to
// the due time (WithMaxSpin).
//
// Limits: SCHED_FIFO shields the loop from other processes, not from this
// process's own CPU-bound goroutines. After each wake-up the loop needs one of
// the Go scheduler's Ps; if busy goroutines hold all of them it waits for one
// up to a 10 ms time slice. Keep CPU-heavy work (rendering pages) to fewer
// goroutines than GOMAXPROCS while pages play.
//
// Linux only (timerfd, sched_setattr, sendmmsg).
package multicast
