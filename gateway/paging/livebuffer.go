package paging

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
)

// LiveBuffer is a output.LiveAudio fed by a talker: Write the talker's 16 kHz audio
// as it arrives (any chunk size), Go when the outputs are ready, Close when
// the talker is done. Every output reads it through its own output.LiveReader, so
// a page plays on several outputs and codecs at once, each at its own pace.
//
// Start: the page's talker audio begins where Go was called, after the
// prelude (what the talker said during the chime is not played). A reader
// that joins later (a SIP amplifier still setting up, an output waiting for
// its zone's first-audio moment) starts there all the same: it plays the
// page from its start, delayed by as much as it joined late, instead of
// dropping the first words. Only what liveKeep no longer holds is lost.
//
// Latency: a pull reader (Read) that joins on time plays a frame once a
// whole frame has arrived, so the audio leaves at the next 20 ms tick of
// its output after it arrived (0-20 ms). A late packet (jitter) makes it
// play a frame of silence and wait for a frame again, which adds 20 ms of
// margin; when more than 30 ms of margin beyond what it joined with has
// gone unused for a second, it is cut back to 20 ms (the delay of a late
// join is kept: cutting it would drop words). The talker's audio is kept
// for liveKeep; a reader that falls further behind skips to the edge.
type LiveBuffer struct {
	mu      sync.Mutex
	ring    []int16
	w       int64 // samples written since the start
	closed  bool
	done    chan struct{}
	notify  chan struct{} // closed and replaced on every Write, Go and Close
	went    bool
	prelude []int16
	from    int64         // talker sample the page starts at: w at Go plus the prelude
	started int           // readers that have read at least once
	startCh chan struct{} // signalled (cap 1) when started changes
	// now is the clock for Next's prelude pacing (tests replace it).
	now func() time.Time
}

// Buffer sizes.
const (
	liveKeep   = 1 << 16                    // talker samples kept: ~4 s at 16 kHz
	liveFrame  = codec.FrameSamples         // 320
	liveTrimAt = 50                         // reads per margin check (1 s)
	liveSlack  = codec.FrameSamples         // margin kept when trimming
	liveExcess = codec.FrameSamples * 3 / 2 // unused margin worth trimming
)

// NewLiveBuffer returns an empty buffer.
func NewLiveBuffer() *LiveBuffer {
	return &LiveBuffer{
		ring:    make([]int16, liveKeep),
		done:    make(chan struct{}),
		notify:  make(chan struct{}),
		startCh: make(chan struct{}, 1),
		now:     time.Now,
	}
}

// wakeLocked wakes every Next waiting for news. Called with b.mu held.
func (b *LiveBuffer) wakeLocked() {
	close(b.notify)
	b.notify = make(chan struct{})
}

// Write appends the talker's audio (16 kHz mono). It never blocks; after
// Close it does nothing.
func (b *LiveBuffer) Write(pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if len(pcm) > liveKeep {
		b.w += int64(len(pcm) - liveKeep)
		pcm = pcm[len(pcm)-liveKeep:]
	}
	for len(pcm) > 0 {
		i := int(b.w % liveKeep)
		n := copy(b.ring[i:], pcm)
		b.w += int64(n)
		pcm = pcm[n:]
	}
	b.wakeLocked()
}

// Go lets the readers play: each plays prelude (the chime; may be nil) from
// its next read, then the talker from the end of the prelude on (see
// LiveBuffer: a reader that starts late is delayed, not cut). Until Go
// readers yield silence. Only the first Go counts.
func (b *LiveBuffer) Go(prelude []int16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.went {
		return
	}
	b.went, b.prelude = true, prelude
	b.from = b.w + int64(len(prelude))
	b.wakeLocked()
}

// Close ends the talker's audio: readers play what they have, then end.
func (b *LiveBuffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	close(b.done)
	b.wakeLocked()
}

// Done implements output.LiveAudio.
func (b *LiveBuffer) Done() <-chan struct{} { return b.done }

// Frames implements Audio: a live page has no frames ahead of time.
func (b *LiveBuffer) Frames(codec.Name) ([][]byte, error) { return nil, output.ErrLiveAudio }

// PCM implements Audio: nil, a live page has no samples ahead of time.
func (b *LiveBuffer) PCM() []int16 { return nil }

// Started returns how many readers have read so far, and a channel that is
// signalled when that number changes.
func (b *LiveBuffer) Started() (int, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started, b.startCh
}

// NewReader implements output.LiveAudio.
func (b *LiveBuffer) NewReader() output.LiveReader { return &liveReader{b: b, pre: -1} }

type liveReader struct {
	b       *LiveBuffer
	started bool
	pre     int // prelude samples played; -1: not begun
	preT0   time.Time
	live    bool
	r       int64 // next talker sample
	keep    int64 // margin the reader joined with (a late join's delay): never trimmed
	priming bool
	minSeen int64 // least margin left after a read in this window
	reads   int
	closed  bool
}

// startLocked counts the reader's first read. Called with b.mu held.
func (r *liveReader) startLocked() {
	if r.started {
		return
	}
	r.started = true
	r.b.started++
	select {
	case r.b.startCh <- struct{}{}:
	default:
	}
}

// preludeLocked copies the next prelude frame into dst; false once the
// prelude is over. Called with b.mu held, after Go.
func (r *liveReader) preludeLocked(dst []int16) bool {
	p := r.b.prelude
	if r.pre < 0 {
		r.pre = 0
	}
	if r.pre >= len(p) {
		return false
	}
	n := copy(dst, p[r.pre:])
	clear(dst[n:])
	r.pre += len(dst)
	return true
}

// joinPosLocked is where a reader joining now starts: the page's start,
// or the oldest sample still kept, or the live edge if the talker is not
// there yet. Called with b.mu held.
func (b *LiveBuffer) joinPosLocked() int64 {
	return min(max(b.from, b.w-(liveKeep-liveFrame)), b.w)
}

// joinLocked moves the reader to the talker's audio: the page's start (see
// LiveBuffer). Called with b.mu held.
func (r *liveReader) joinLocked() {
	if !r.live {
		r.live, r.r, r.priming = true, r.b.joinPosLocked(), true
		r.keep = r.b.w - r.r
		r.minSeen, r.reads = -1, 0
	}
	if r.b.w-r.r > liveKeep-liveFrame { // overrun: too far behind
		r.r = r.b.w - liveFrame
	}
}

// copyLocked copies n talker samples from r.r into dst and advances.
func (r *liveReader) copyLocked(dst []int16, n int) {
	b := r.b
	for done := 0; done < n; {
		i := int((r.r) % liveKeep)
		c := copy(dst[done:n], b.ring[i:])
		done += c
		r.r += int64(c)
	}
	clear(dst[n:])
}

func (r *liveReader) Read(dst []int16) bool {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	r.startLocked()
	if r.closed {
		return false
	}
	if !b.went {
		clear(dst)
		return !b.closed
	}
	if r.preludeLocked(dst) {
		return true
	}
	r.joinLocked()
	avail := b.w - r.r
	if b.closed && avail == 0 {
		clear(dst)
		return false
	}
	if r.priming {
		if avail < int64(len(dst)) && !b.closed {
			clear(dst)
			return true
		}
		r.priming = false
	}
	switch {
	case avail >= int64(len(dst)):
		r.copyLocked(dst, len(dst))
	case b.closed:
		r.copyLocked(dst, int(avail))
	default: // late: play silence and wait for a whole frame again
		clear(dst)
		r.priming = true
		r.minSeen, r.reads = -1, 0
		return true
	}
	// Margin the stream has not needed for a whole window is latency for
	// nothing: drop it, keeping liveSlack against jitter. The delay the
	// reader joined with is audio still to play, not margin.
	left := b.w - r.r
	if r.minSeen < 0 || left < r.minSeen {
		r.minSeen = left
	}
	if r.reads++; r.reads >= liveTrimAt {
		if r.minSeen > r.keep+liveExcess {
			r.r += r.minSeen - r.keep - liveSlack
		}
		r.minSeen, r.reads = -1, 0
	}
	return true
}

func (r *liveReader) Next(ctx context.Context, dst []int16) error {
	b := r.b
	for {
		b.mu.Lock()
		r.startLocked()
		if r.closed {
			b.mu.Unlock()
			return io.EOF
		}
		wake := b.notify
		var due time.Time
		switch {
		case !b.went:
			if b.closed {
				b.mu.Unlock()
				return io.EOF
			}
		case r.pre < len(b.prelude) && len(b.prelude) > 0:
			// The prelude at real-time pace: frame k at t0 + k*20ms.
			if r.pre < 0 {
				r.preT0 = b.now()
			}
			due = r.preT0.Add(time.Duration(max(r.pre, 0)/liveFrame) * 20 * time.Millisecond)
			if !b.now().Before(due) {
				r.preludeLocked(dst)
				b.mu.Unlock()
				return nil
			}
		default:
			r.joinLocked()
			avail := b.w - r.r
			if avail >= int64(len(dst)) {
				r.copyLocked(dst, len(dst))
				b.mu.Unlock()
				return nil
			}
			if b.closed {
				if avail == 0 {
					b.mu.Unlock()
					return io.EOF
				}
				r.copyLocked(dst, int(avail))
				b.mu.Unlock()
				return nil
			}
		}
		b.mu.Unlock()
		var timer *time.Timer
		var fired <-chan time.Time
		if !due.IsZero() {
			timer = time.NewTimer(due.Sub(b.now()))
			fired = timer.C
		}
		var err error
		select {
		case <-wake:
		case <-fired:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return err
		}
	}
}

func (r *liveReader) Over() bool {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.closed {
		return true
	}
	if !b.closed {
		return false
	}
	if !b.went {
		return true
	}
	if len(b.prelude) > 0 && r.pre < len(b.prelude) {
		return false
	}
	if !r.live { // joining now would start at the page's start
		return b.w == b.joinPosLocked()
	}
	return b.w == r.r
}

func (r *liveReader) Close() {
	b := r.b
	b.mu.Lock()
	r.closed = true
	b.mu.Unlock()
}
