package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
)

// The scheduler tests run in a synctest bubble: time is fake and advances
// only when every goroutine is blocked, so the timeline each test records
// is exact. Fake outputs "play" for the audio's length and take endBurst to
// end cleanly when cut (a Polycom End burst is about 0.4 s).

const (
	lead     = 100 * time.Millisecond
	endBurst = 300 * time.Millisecond
)

// fakeAudio is silence of a given length.
type fakeAudio struct{ d time.Duration }

func (a fakeAudio) Frames(c codec.Name) ([][]byte, error) {
	n := int(a.d / (20 * time.Millisecond))
	f := make([][]byte, n)
	for i := range f {
		f[i] = make([]byte, 160)
	}
	return f, nil
}

func (a fakeAudio) PCM() []int16 { return make([]int16, int(a.d*codec.SampleRate/time.Second)) }

func audioLen(a output.Audio) time.Duration {
	return time.Duration(len(a.PCM())) * time.Second / codec.SampleRate
}

// recorder is the test's timeline: "ms what args".
type recorder = clocktest.Timeline

// fakeOutput is an Output made of funcs.
type fakeOutput struct {
	name  string
	play  func(ctx context.Context, pb *output.Playback) error
	close func() error
}

func (f *fakeOutput) Name() string                                        { return f.name }
func (f *fakeOutput) Play(ctx context.Context, pb *output.Playback) error { return f.play(ctx, pb) }
func (f *fakeOutput) Close() error                                        { return f.close() }

// behave sets how the output named name plays (read at each Play).
func (h *harness) behave(name string, b func(name string) playFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.behaviours[name] = b
}

type playFunc = func(ctx context.Context, pb *output.Playback) error

// pager plays for the audio's length after a setup delay (a SIP output's
// answer time), and takes cut to end when its context ends.
func pager(rec *recorder, setup, cut time.Duration) func(name string) playFunc {
	return func(name string) playFunc {
		return func(ctx context.Context, pb *output.Playback) error {
			if setup > 0 {
				select {
				case <-time.After(setup):
				case <-ctx.Done():
					rec.Add("cut %s %s", name, pb.ID)
					return ctx.Err()
				}
			}
			rec.Add("start %s %s %s", name, pb.ID, pb.Priority)
			t := time.NewTimer(audioLen(pb.Audio))
			defer t.Stop()
			select {
			case <-t.C:
				rec.Add("end %s %s", name, pb.ID)
				return nil
			case <-ctx.Done():
				time.Sleep(cut) // End burst / BYE
				rec.Add("cut %s %s", name, pb.ID)
				return ctx.Err()
			}
		}
	}
}

// failing fails after d.
func failing(rec *recorder, d time.Duration, err error) func(name string) playFunc {
	return func(name string) playFunc {
		return func(ctx context.Context, pb *output.Playback) error {
			time.Sleep(d)
			rec.Add("fail %s %s", name, pb.ID)
			return err
		}
	}
}

// stuck ignores its context and returns after d.
func stuck(rec *recorder, d time.Duration) func(name string) playFunc {
	return func(name string) playFunc {
		return func(ctx context.Context, pb *output.Playback) error {
			rec.Add("start %s %s %s", name, pb.ID, pb.Priority)
			time.Sleep(d)
			rec.Add("end %s %s", name, pb.ID)
			return nil
		}
	}
}

// fakeRelays records acquisitions and waits out a lead time.
type fakeRelays struct {
	rec  *recorder
	lead time.Duration
	err  map[string]error // zone -> Acquire error
}

func (r *fakeRelays) Acquire(ctx context.Context, zones []string) error {
	z := strings.Join(zones, ",")
	if err := r.err[z]; err != nil {
		r.rec.Add("acquire-failed %s", z)
		return err
	}
	r.rec.Add("acquire %s", z)
	select {
	case <-time.After(r.lead):
		return nil
	case <-ctx.Done():
		r.rec.Add("acquire-cut %s", z)
		return ctx.Err()
	}
}

func (r *fakeRelays) Release(zones []string) { r.rec.Add("release %s", strings.Join(zones, ",")) }

// harness is a gateway with fake outputs and relays.
type harness struct {
	t          *testing.T
	g          *Gateway
	rec        *recorder
	relays     *fakeRelays
	sub        *events.Subscription
	evs        []events.Event // drained from sub
	gen        int
	mu         sync.Mutex
	behaviours map[string]func(name string) playFunc
}

// zoneSpec is a zone of n fake outputs.
type zoneSpec struct {
	outputs int
	maxPage time.Duration
}

func testConfig(zones map[string]zoneSpec) *config.Config {
	c := &config.Config{Zones: map[string]*config.Zone{}}
	for n, s := range zones {
		z := &config.Zone{Description: "zone " + n, MaxPage: config.Duration(s.maxPage)}
		if s.maxPage == 0 {
			z.MaxPage = config.Duration(time.Minute)
		}
		for range s.outputs {
			z.Outputs = append(z.Outputs, &config.Output{Type: config.OutputSIP, URI: "sip:page@" + n + ".test"})
		}
		c.Zones[n] = z
	}
	return c
}

func newHarness(t *testing.T, zones map[string]zoneSpec, opts Options) *harness {
	h := &harness{
		t:          t,
		rec:        clocktest.NewTimeline(),
		behaviours: map[string]func(string) playFunc{},
	}
	h.relays = &fakeRelays{rec: h.rec, lead: lead}
	bus := events.New()
	h.sub = bus.Subscribe(1000)
	opts.Outputs = h.factory
	if opts.Relays == nil {
		opts.Relays = h.relays
	}
	opts.Events = bus
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := New(testConfig(zones).Zones, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	t.Cleanup(func() { g.Close() })
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// factory makes fake outputs named zone/outputs[i] (with "#gen" after the
// first generation), behaving as h.behaviours says (default: a pager).
func (h *harness) factory(zone string, i int, o *config.Output) (output.Output, error) {
	name := output.Name(zone, i)
	if h.gen > 0 {
		name = fmt.Sprintf("%s#%d", name, h.gen)
	}
	play := func(ctx context.Context, pb *output.Playback) error {
		h.mu.Lock()
		b := h.behaviours[name]
		h.mu.Unlock()
		if b == nil {
			b = pager(h.rec, 0, endBurst)
		}
		return b(name)(ctx, pb)
	}
	return &fakeOutput{name: name, play: play, close: func() error {
		h.rec.Add("close %s", name)
		return nil
	}}, nil
}

func (h *harness) submit(id string, prio output.Priority, d time.Duration, zones ...string) *paging.Handle {
	h.t.Helper()
	hd, err := h.g.Submit(context.Background(), paging.Page{ID: id, Priority: prio, Zones: zones, Audio: fakeAudio{d}, Text: "text of " + id})
	if err != nil {
		h.t.Fatalf("submit %s: %v", id, err)
	}
	return hd
}

// wait waits for a page and checks why it ended.
func (h *harness) wait(hd *paging.Handle, want paging.Reason) {
	h.t.Helper()
	r, err := hd.Wait(context.Background())
	if err != nil || r != want {
		h.t.Errorf("page %s ended %q (err %v), want %q", hd.ID(), r, err, want)
	}
}

// timeline checks the recorded timeline; lines at the same millisecond may
// come in any order.
func (h *harness) timeline(want ...string) {
	h.t.Helper()
	got := h.rec.Lines()
	sort.Strings(got)
	want = slices.Clone(want)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		h.t.Errorf("timeline:\n  got:\n    %s\n  want:\n    %s", strings.Join(got, "\n    "), strings.Join(want, "\n    "))
	}
}

// events returns what was published so far, as "type page [zones] reason",
// optionally only for some pages.
func (h *harness) events(pages ...string) []string {
	for drained := false; !drained; {
		select {
		case e := <-h.sub.C():
			h.evs = append(h.evs, e)
		default:
			drained = true
		}
	}
	var out []string
	for _, e := range h.evs {
		if len(pages) > 0 && !slices.Contains(pages, e.Page) {
			continue
		}
		s := fmt.Sprintf("%s %s %s %v", e.Type, e.Page, e.Priority, e.Zones)
		if e.Output != "" {
			s += " " + e.Output
		}
		if e.Reason != "" {
			s += " " + e.Reason
		}
		out = append(out, s)
	}
	return out
}

func checkEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("events:\n  got:\n    %s\n  want:\n    %s", strings.Join(got, "\n    "), strings.Join(want, "\n    "))
	}
}

// parseRTP parses every datagram as an RTP packet, failing the test on the
// first that is not one.
func parseRTP(t *testing.T, dgs [][]byte) []pionrtp.Packet {
	t.Helper()
	ps := make([]pionrtp.Packet, len(dgs))
	for i, b := range dgs {
		if err := ps[i].Unmarshal(b); err != nil {
			t.Fatalf("rtp packet %d: %v", i, err)
		}
	}
	return ps
}
