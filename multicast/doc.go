// Package multicast sends paging audio to multicast groups: Sender owns a
// socket configured for one output (group, port, interface, TTL, loopback);
// PolycomOutput and RTPOutput play a page of pre-encoded 20 ms frames in the
// Polycom group-paging and RTP formats (subpackages polycom and rtp, which
// are pure encoders and must not import this package). Outputs makes the
// zone outputs of config types polycom and rtp: they implement
// gateway/output.Output (page priority picks the Polycom channel, live
// pages stream through the Pacer) and share one socket per interface, TTL
// and loopback. Subpackage netif picks the interface when none is
// configured. The package imports gateway/output, never gateway.
//
// Packets leave through the appliance's one real-time sending loop,
// internal/pacer (Pacer here is that type), which call legs and hold music
// share: one thread, an absolute timerfd, SCHED_FIFO when granted, and
// one sendmmsg per shared socket per wake-up. See that package for the
// pacing design and its limits.
//
// Linux only (through internal/pacer: timerfd, sched_setattr, sendmmsg).
package multicast
