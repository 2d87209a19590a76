package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkpage/parkpage/gateway/align"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/pacer"
)

// playZone plays w on one zone: relays on (lead), every output at once,
// relays off (hold). It returns once every output has returned, or, after a
// cut, once CutGrace has passed; outputs still ending are left to outputs,
// which run waits for before the page ends.
func (g *Gateway) playZone(w *play, z *Zone, outputs *sync.WaitGroup) {
	zctx := w.ctxs[z.Name] // cancelled by a cut or by the page
	ctx, cancel := zctx, context.CancelFunc(func() {})
	if z.MaxPage > 0 {
		ctx, cancel = context.WithTimeout(zctx, z.MaxPage)
	}
	defer cancel()

	played, failed := false, false
	acquired := false
	if g.relays != nil {
		began := time.Now()
		err := g.relays.Acquire(ctx, []string{z.Name})
		if len(z.Relays) > 0 {
			w.page.report(paging.OutputResult{Zone: z.Name, Output: z.Name + "/relays", Type: "relay",
				Address: strings.Join(z.Relays, ", "), Err: err, Cut: err != nil && ctx.Err() != nil, Took: time.Since(began)})
		}
		switch {
		case err == nil:
			acquired = true
		case ctx.Err() == nil:
			// A relay fault must not silence the phones: play on without it.
			g.log.Warn("zone relays failed; paging without them", "page", w.page.id, "zone", z.Name, "err", err)
			g.publish(events.Event{
				Type: events.OutputFailed, Page: w.page.id, Priority: w.page.Priority.String(),
				Zones: []string{z.Name}, Output: z.Name + "/relays", Text: w.page.Text, Reason: err.Error(),
			})
		}
	}
	if ctx.Err() == nil {
		played = true
		failed = g.playOutputs(ctx, w, z, outputs)
	}
	if acquired {
		g.relays.Release([]string{z.Name})
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	p := w.page
	if played {
		p.played++
		if failed {
			p.failed++
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && zctx.Err() == nil {
		p.maxPage = true
		g.log.Info("page reached the zone's max_page", "page", p.id, "zone", z.Name, "max_page", z.MaxPage)
	}
	delete(w.held, z.Name)
	if g.owner[z.Name] == w {
		delete(g.owner, z.Name)
	}
	g.schedule()
}

// playOutputs runs every output of z concurrently and reports whether all
// of them failed. A zone without outputs (relays only) is held for the
// length of the audio.
func (g *Gateway) playOutputs(ctx context.Context, w *play, z *Zone, outputs *sync.WaitGroup) (allFailed bool) {
	outs := namedOutputs(w.page.Outputs, pageOutputs(w.page.OutputTypes, z.Outputs))
	if len(outs) == 0 {
		if la, ok := w.page.Audio.(output.LiveAudio); ok {
			select { // relays held while the talker talks
			case <-la.Done():
			case <-ctx.Done():
			}
			return false
		}
		d := time.Duration(len(w.page.Audio.PCM())) * time.Second / codec.SampleRate
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return false
	}
	pb := &output.Playback{
		ID:       w.page.id,
		Priority: w.page.Priority,
		Zone:     z.Name,
		Audio:    w.page.Audio,
		CallerID: w.page.CallerID,
	}
	group := g.alignGroup(z, outs)
	if group != nil {
		defer group.Close()
	}
	results := make(chan bool, len(outs)) // true: failed
	for _, o := range outs {
		opb := pb
		var m *align.Member
		if group != nil && aligned(o) {
			m = group.Member()
			c := *pb
			c.Start, opb = m, &c
		}
		outputs.Add(1)
		go func() {
			defer outputs.Done()
			if m != nil {
				defer m.Leave() // a failed or cut output holds nobody up
			}
			results <- g.playOutput(ctx, w, z.Name, o, opb)
		}()
	}
	n, failed := 0, 0
	done := ctx.Done()
	var grace <-chan time.Time
	for n < len(outs) {
		select {
		case f := <-results:
			n++
			if f {
				failed++
			}
		case <-done:
			done = nil
			t := time.NewTimer(g.grace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			g.log.Warn("outputs slow to end after a cut; zone handed on", "page", w.page.id, "zone", z.Name,
				"ended", n, "outputs", len(outs), "grace", g.grace)
			return false
		}
	}
	return failed == len(outs)
}

// alignGroup returns the group that lines up the first audio frames of
// z's outputs outs, or nil when the zone favours latency or fewer than two
// of them line up.
func (g *Gateway) alignGroup(z *Zone, outs []output.Output) *align.Group {
	if z.Latency {
		return nil
	}
	n := 0
	for _, o := range outs {
		if aligned(o) {
			n++
		}
	}
	if n < 2 {
		return nil
	}
	wait := z.AlignWait
	if wait <= 0 {
		wait = align.DefaultWait
	}
	return align.NewGroup(n, wait, align.Clock{Grid: frameGrid})
}

// frameGrid moves t up to the start of a frame of the pacer's grid: SIP
// calls' RTP goes out on that grid, so the multicast streams then start
// with the calls' first frames instead of up to 20 ms before them.
func frameGrid(t time.Time) time.Time {
	now, mono := time.Now(), pacer.Now()
	at := mono + int64(t.Sub(now))
	f := int64(pacer.Frame)
	return t.Add(time.Duration((at+f-1)/f*f - at))
}

// playOutput plays pb on o and reports whether it failed. Ending because
// ctx ended is a clean cut, not a failure.
func (g *Gateway) playOutput(ctx context.Context, w *play, zone string, o output.Output, pb *output.Playback) bool {
	began := time.Now()
	err := o.Play(ctx, pb)
	if w.page.OnOutput != nil {
		info := describe(o)
		r := paging.OutputResult{Zone: zone, Output: o.Name(), Type: info.Type, Address: info.Address, Took: time.Since(began)}
		if err != nil && ctx.Err() != nil {
			r.Cut = true
		} else {
			r.Err = err
		}
		w.page.report(r)
	}
	if err == nil {
		return false
	}
	if ctx.Err() != nil {
		if !errors.Is(err, ctx.Err()) {
			g.log.Debug("output error while being cut", "page", w.page.id, "output", o.Name(), "err", err)
		}
		return false
	}
	g.log.Warn("output failed", "page", w.page.id, "zone", zone, "output", o.Name(), "err", err)
	g.publish(events.Event{
		Type: events.OutputFailed, Page: w.page.id, Priority: w.page.Priority.String(),
		Zones: []string{zone}, Output: o.Name(), Text: w.page.Text, Reason: err.Error(),
	})
	return true
}

// report tells the page's OnOutput, if any, how an output did.
func (p *pageState) report(r paging.OutputResult) {
	if p.OnOutput != nil {
		p.OnOutput(r)
	}
}

// namedOutputs keeps the outputs named in names (all when names is empty).
func namedOutputs(names []string, outs []output.Output) []output.Output {
	if len(names) == 0 {
		return outs
	}
	var keep []output.Output
	for _, o := range outs {
		if slices.Contains(names, o.Name()) {
			keep = append(keep, o)
		}
	}
	return keep
}
