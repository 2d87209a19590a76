// Package demo is `parkpage demo`: the whole park-and-page workflow on one
// machine with nothing else. It starts the appliance on a loopback-only
// config (every listener on 127.0.0.1, every output on lo or the sound
// card), parks a simulated caller with a built-in SIP user agent
// (internal/softphone), plays the park announcement on the sound card if
// there is a usable one and always captures the zone's multicast on lo to
// a WAV file, checks the slot board API shows the call, picks the call up
// with a second simulated phone, and stops. Nothing is sent beyond
// loopback.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/softphone"
	"github.com/parkpage/parkpage/internal/tts"
)

// Appliance is a running parkpage, started by Options.Start.
type Appliance struct {
	// API is the admin base URL, http://127.0.0.1:PORT.
	API string
	// Bus carries the appliance's events.
	Bus *events.Bus
	// Stop stops the appliance and waits for it.
	Stop func() error
}

// Options configure Run.
type Options struct {
	// Dir receives the config, the appliance's log, its state and the WAV
	// files.
	Dir string
	// PickupAfter is how long the call stays parked (at least until the
	// announcement has played) before the second phone picks it up.
	PickupAfter time.Duration
	// Sound is "auto" (the first usable ALSA device), "off", or an ALSA
	// device name such as hw:0,0.
	Sound string
	// Out receives the narration.
	Out io.Writer
	// Start runs the appliance on a config file, logging to log.
	Start func(ctx context.Context, configPath string, log io.Writer) (*Appliance, error)
}

// Files the demo writes in Options.Dir.
const (
	ZoneWAV    = "zone-demo.wav"      // what the zone's speakers played
	ParkedWAV  = "parked-caller.wav"  // what the parked caller heard
	PickupWAV  = "picked-up-call.wav" // what the phone that picked up heard
	LogFile    = "parkpage.log"
	ConfigFile = "parkpage-demo.yaml"
)

const (
	slot      = "701"
	group     = "239.255.80.1" // organisation-local scope, sent on lo only
	zoneCodec = codec.G722
)

var loopback = netip.MustParseAddr("127.0.0.1")

// Run runs the demo; it returns nil when every step worked.
func Run(ctx context.Context, o Options) error {
	if o.PickupAfter <= 0 {
		o.PickupAfter = 8 * time.Second
	}
	out := o.Out
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}

	sipPort, err := freePort("udp")
	if err != nil {
		return err
	}
	zonePort, err := freePort("udp")
	if err != nil {
		return err
	}
	card := ""
	switch o.Sound {
	case "", "auto":
		card = findSoundCard()
	case "off", "none":
	default:
		if err := usableSoundCard(o.Sound); err != nil {
			return fmt.Errorf("sound card %s: %w", o.Sound, err)
		}
		card = o.Sound
	}
	cfgPath := filepath.Join(o.Dir, ConfigFile)
	if err := os.WriteFile(cfgPath, []byte(Config(o.Dir, sipPort, zonePort, card)), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(o.Dir, LogFile))
	if err != nil {
		return err
	}
	defer logf.Close()

	// Listen to the zone before anything can page it.
	zone, err := listenZone(group, zonePort, zoneCodec)
	if err != nil {
		return err
	}
	zoneStopped := false
	defer func() {
		if !zoneStopped {
			zone.stop()
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	app, err := o.Start(ctx, cfgPath, logf)
	if err != nil {
		return fmt.Errorf("starting parkpage: %w (log: %s)", err, logf.Name())
	}
	stopped := false
	defer func() {
		if !stopped {
			app.Stop()
		}
	}()
	sub := app.Bus.Subscribe(1024)
	defer sub.Close()

	say("parkpage demo: the appliance runs on 127.0.0.1 only (SIP udp 127.0.0.1:%d, admin %s/); nothing leaves this machine.", sipPort, app.API)
	say("  config %s, log %s", cfgPath, logf.Name())

	// Two simulated phones with their own RTP engine, on loopback too.
	eng, err := media.NewEngine(media.Config{IP: loopback, PortMin: 20000, PortMax: 29999}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	engCtx, engStop := context.WithCancel(ctx)
	engDone := make(chan struct{})
	go func() { defer close(engDone); eng.Run(engCtx) }()
	defer func() { engStop(); <-engDone }()
	caller, err := softphone.New(softphone.Options{User: "+15550100", Display: "ACME Supply", IP: loopback, Media: eng})
	if err != nil {
		return err
	}
	defer caller.Close()
	reception, err := softphone.New(softphone.Options{User: "1002", Display: "Reception", IP: loopback, Media: eng})
	if err != nil {
		return err
	}
	defer reception.Close()
	target := func(ext string) sip.Uri {
		return sip.Uri{Scheme: "sip", User: ext, Host: loopback.String(), Port: sipPort}
	}

	// 1. The caller is blind-transferred to the park extension, as a
	// phone's Park key or a PBX would do it.
	say("\n1. \"ACME Supply\" <sip:+15550100> is transferred to park (700) by extension 1001.")
	dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
	call, err := caller.Dial(dctx, target("700"), sip.NewHeader("Referred-By", fmt.Sprintf("<sip:1001@%s>", loopback)))
	dcancel()
	if err != nil {
		return fmt.Errorf("park: %w", err)
	}
	defer call.Hangup(context.Background())
	parked, err := waitEvent(ctx, sub, events.CallParked, 10*time.Second)
	if err != nil {
		return fmt.Errorf("park: %w", err)
	}
	parkedAt := time.Now()
	say("   parkpage answered and parked it in slot %s; the caller hears hold music.", parked.Slot)

	// The caller says something the phone that picks up will hear.
	voice, err := speech("Hello, this is ACME Supply. I am holding for sales.")
	if err != nil {
		return err
	}
	talkCtx, talkStop := context.WithCancel(ctx)
	defer talkStop()
	go func() {
		for talkCtx.Err() == nil {
			if call.Play(talkCtx, voice) != nil {
				return
			}
			call.Play(talkCtx, make([]int16, codec.SampleRate/2))
		}
	}()

	// 2. The slot board.
	st, err := slotState(ctx, app.API, parked.Slot)
	if err != nil {
		return err
	}
	if st.State != "parked" {
		return fmt.Errorf("slot board: %s/api/v1/slots shows slot %s %q, want parked", app.API, parked.Slot, st.State)
	}
	say("\n2. Slot board: %s/  (slot %s: %s, caller %s)", app.API, st.Slot, st.State, st.Caller)
	say("   %s/api/v1/slots confirms it. Open the board now: the call stays parked for %s.", app.API, o.PickupAfter.Round(time.Second))

	// 3. The announcement on the zone.
	started, err := waitEvent(ctx, sub, events.PageStarted, 15*time.Second)
	if err != nil {
		return fmt.Errorf("announcement: %w", err)
	}
	where := fmt.Sprintf("multicast %s:%d (G.722) on lo", group, zonePort)
	if card != "" {
		where = "the sound card " + card + " and " + where
	}
	say("\n3. Zone \"demo\" announces %q on %s.", strings.TrimSpace(started.Text), where)
	ended, err := waitEvent(ctx, sub, events.PageEnded, 90*time.Second)
	if err != nil {
		return fmt.Errorf("announcement: %w", err)
	}
	time.Sleep(200 * time.Millisecond) // the last packets in flight on lo
	pcm, pkts := zone.stop()
	zoneStopped = true
	level := DBFS(pcm)
	zoneWAV := filepath.Join(o.Dir, ZoneWAV)
	if err := wav.WriteFile(zoneWAV, codec.SampleRate, 1, pcm); err != nil {
		return err
	}
	say("   It played for %.1f s (%s); %d packets captured, level %.0f dBFS: %s", float64(len(pcm))/codec.SampleRate, ended.Reason, pkts, level, zoneWAV)
	if pkts == 0 || level < -50 {
		return fmt.Errorf("announcement: the zone's capture is silent (%d packets, %.0f dBFS)", pkts, level)
	}

	// 4. A second phone picks the call up.
	if wait := time.Until(parkedAt.Add(o.PickupAfter)); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	heldFrames, heldLevel := call.Heard()
	if err := wav.WriteFile(filepath.Join(o.Dir, ParkedWAV), codec.SampleRate, 1, call.Recording()); err != nil {
		return err
	}
	say("\n4. While parked the caller heard %.1f s of hold music (%.0f dBFS): %s", float64(heldFrames)/50, heldLevel, filepath.Join(o.Dir, ParkedWAV))
	say("   Reception (1002) dials %s and picks the call up.", parked.Slot)
	dctx, dcancel = context.WithTimeout(ctx, 15*time.Second)
	pick, err := reception.Dial(dctx, target(parked.Slot))
	dcancel()
	if err != nil {
		return fmt.Errorf("pickup: %w", err)
	}
	if _, err := waitEvent(ctx, sub, events.CallRetrieved, 10*time.Second); err != nil {
		pick.Hangup(context.Background())
		return fmt.Errorf("pickup: %w", err)
	}
	select {
	case <-time.After(4 * time.Second): // a moment of conversation
	case <-ctx.Done():
		return ctx.Err()
	}
	talkStop()
	frames, talkLevel := pick.Heard()
	pickWAV := filepath.Join(o.Dir, PickupWAV)
	if err := wav.WriteFile(pickWAV, codec.SampleRate, 1, pick.Recording()); err != nil {
		return err
	}
	st, err = slotState(ctx, app.API, parked.Slot)
	if err != nil {
		return err
	}
	say("   Connected: reception hears the caller (%.1f s, %.0f dBFS): %s", float64(frames)/50, talkLevel, pickWAV)
	say("   Slot %s is %s again.", parked.Slot, st.State)
	if frames == 0 || talkLevel < -50 {
		return fmt.Errorf("pickup: reception heard nothing from the caller (%d frames, %.0f dBFS)", frames, talkLevel)
	}
	if st.State != "free" {
		return fmt.Errorf("pickup: slot %s is %q after the pickup, want free", parked.Slot, st.State)
	}

	// 5. Hang up and stop.
	if err := pick.Hangup(ctx); err != nil {
		return fmt.Errorf("hang up: %w", err)
	}
	select {
	case <-call.Done(): // parkpage hung up the caller's leg too
	case <-time.After(5 * time.Second):
		call.Hangup(ctx)
	}
	stopped = true
	if err := app.Stop(); err != nil {
		return fmt.Errorf("stopping parkpage: %w", err)
	}
	say("\n5. Both calls hung up; parkpage stopped. Files: %s", o.Dir)
	return nil
}

// Config is the demo's loopback-only config: SIP and the admin API on
// 127.0.0.1, the zone's multicast on lo, and the sound card (if any) as a
// line out.
func Config(dir string, sipPort, zonePort int, card string) string {
	lineOut := ""
	if card != "" {
		lineOut = fmt.Sprintf("      - {type: lineout, device: %q}\n", card)
	}
	return fmt.Sprintf(`# parkpage demo: everything on loopback.
state_dir: %q
log: {level: info}
http: {listen: "127.0.0.1:0"}
sip:
  listen: [{transport: udp, address: "127.0.0.1:%d"}]
  trusted: [127.0.0.0/8]
  rtp_ports: 30000-39999
park:
  lots:
    - extension: "700"
      slots: 701-703
      find_slot: first
      timeout: 5m
      label: Sales
      announce: {zones: [demo]}
announce:
  chime: two-tone
zones:
  demo:
    description: The demo's zone, heard on lo (and the sound card when there is one)
    outputs:
      - {type: rtp, group: %s, port: %d, codec: %s, interface: lo, ttl: 1, loopback: true}
%s`, filepath.Join(dir, "state"), sipPort, group, zonePort, zoneCodec, lineOut)
}

func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitEvent(ctx context.Context, sub *events.Subscription, typ events.Type, within time.Duration) (events.Event, error) {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case e := <-sub.C():
			if e.Type == typ {
				return e, nil
			}
			if e.Type == events.CallRefused || e.Type == events.OutputFailed {
				return e, fmt.Errorf("%s: %s", e.Type, e.Reason)
			}
		case <-t.C:
			return events.Event{}, fmt.Errorf("no %s event within %s", typ, within)
		case <-ctx.Done():
			return events.Event{}, ctx.Err()
		}
	}
}

type slotView struct {
	Slot   string `json:"slot"`
	State  string `json:"state"`
	Caller string `json:"caller"`
}

// api is a client that never uses a proxy: the admin API is on loopback.
var api = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}

func slotState(ctx context.Context, base, slot string) (slotView, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/slots", nil)
	if err != nil {
		return slotView{}, err
	}
	res, err := api.Do(req)
	if err != nil {
		return slotView{}, fmt.Errorf("slot board: %w", err)
	}
	defer res.Body.Close()
	var body struct{ Slots []slotView }
	if res.StatusCode != 200 {
		return slotView{}, fmt.Errorf("slot board: %s", res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return slotView{}, fmt.Errorf("slot board: %w", err)
	}
	for _, s := range body.Slots {
		if s.Slot == slot {
			return s, nil
		}
	}
	return slotView{}, fmt.Errorf("slot board: no slot %s", slot)
}

func speech(text string) ([]int16, error) {
	e, err := tts.New("slt")
	if err != nil {
		return nil, err
	}
	pcm, err := e.Synthesize(context.Background(), text)
	if err != nil {
		return nil, err
	}
	if len(pcm) == 0 {
		return nil, errors.New("speech: nothing synthesised")
	}
	return pcm, nil
}

// DBFS is the RMS level of pcm in dB full scale (-inf for silence).
func DBFS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return math.Inf(-1)
	}
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return 20 * math.Log10(math.Sqrt(s/float64(len(pcm)))/32768)
}
