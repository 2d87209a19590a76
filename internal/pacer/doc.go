// Package pacer is parkpage's one real-time sending loop: every 20 ms
// media stream the box sends (hold music and prompts on call legs, RTP to
// SIP amplifiers, multicast pages) leaves through a single Pacer.
//
// A stream is a Source (its packets in order, each with a due time) and a
// Sink (the socket and destination). The Pacer owns no format: Sources
// build the packets (RTP, Polycom group paging), and this package imports
// nothing of parkpage. It must stay a leaf: it knows no SIP, no multicast
// format and no codec.
//
// # The loop
//
// Pacing follows docs/pacing.md: Go's timers wake with about a millisecond of
// slack and share the Ps with everything else, so the Pacer runs one loop on
// a locked OS thread that sleeps on an absolute CLOCK_MONOTONIC timerfd,
// sends every due packet of every stream per wake-up with sendmmsg (one call
// per socket), and asks for SCHED_FIFO (granted to root or CAP_SYS_NICE; it
// logs once and carries on at normal priority otherwise). Packet k of a
// stream is due at start + its own offset, so errors never accumulate.
// Under SCHED_FIFO the loop also wakes a little early, by its own measured
// timer latency, and polls the clock up to the due time (WithMaxSpin), for
// pages; wake-ups for call legs alone (Clocked streams) do not poll, so a
// parked call costs no spinning.
//
// With no stream the timer is disarmed and the thread sleeps in the kernel:
// an idle appliance costs no wake-ups and counts no late ones.
//
// # Hand-over without locks
//
// Normal-priority goroutines never share a lock with the loop. Play pushes
// the new stream on a lock-free stack that the loop takes whole at its next
// wake-up; cancellation sets an atomic flag on the stream; both then wake
// the loop by arming its timerfd to expire at once (timerfd_settime is safe
// from any thread). The stream set itself belongs to the loop thread. The
// per-wake-up path allocates nothing once its buffers have grown to the
// working set (BenchmarkWakeup reports allocs/op).
//
// Sources with a steady 20 ms cadence for a whole call (RTP legs)
// implement Clocked: they start on the Pacer's global 20 ms frame grid, so
// all of them share each wake-up and can share work per frame (hold music
// encoded once per codec per frame).
//
// # Kernel-timed sends
//
// SCHED_FIFO shields the loop from other processes, not from this
// process's own runtime: after each wake-up the loop needs one of the Go
// scheduler's Ps, and a garbage collection or busy goroutines kept it
// waiting for up to a quarter of a second (BenchmarkGCLoad). So Sources
// whose packets are known ahead (Ahead: rendered pages, RTP and Polycom)
// are built up to the look-ahead (WithLookahead, default 1 s) before
// their due time and handed to the kernel through io_uring, each as an
// absolute CLOCK_MONOTONIC timeout linked to its send: the kernel sends it
// on time whatever the Go runtime does meanwhile. Cancelling such a stream
// cancels what is still queued and rewinds the Source (Ahead.Rewind)
// before Stop, so its closing packets follow the last packet sent with no
// gap in sequence. Live streams and call legs (their audio is decided
// frame by frame) are sent from the loop at their due time; keep
// CPU-heavy work to fewer goroutines than GOMAXPROCS while they play.
// Where the kernel cannot time sends (Linux < 5.19, no io_uring) the loop
// sends every packet at its due time; it logs which way it sends and why
// (mode=io_uring-timed, io_uring or sendmmsg). See ahead.go for why not
// SO_TXTIME.
//
// Call legs are not Ahead: what a leg sends is decided at its frame (hold
// music, a prompt, a bridge, DTMF, the end of the call), and a jitter
// buffer in the phone absorbs a late frame of hold music where a page's
// receivers, speakers with small buffers, would click. Queued ahead, each
// leg's packet would cost a timer and two ring entries instead of one
// entry per frame (BenchmarkWakeup: 6–13 µs against 2.4 µs per packet at
// 500 streams), against the 500-parked-call CPU budget.
//
// Linux only (timerfd, sched_setattr, io_uring, sendmmsg).
package pacer
