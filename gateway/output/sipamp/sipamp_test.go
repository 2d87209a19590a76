package sipamp

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// The whole page against sipp as an auto-answer amplifier: the INVITE
// carries the preset's headers (checked by the scenario), the zone code
// arrives as RFC 4733 events in order with the configured timing, and then
// the audio, which is the announcement, in the codec the amplifier chose;
// the call ends with a BYE (the scenario waits for it).
func TestPageRFC4733(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pt      uint8
		name    string
		codec   codec.Name
		code    string
		on, gap time.Duration
	}{
		{0, "PCMU", codec.PCMU, "#12", 100 * time.Millisecond, 100 * time.Millisecond},
		{9, "G722", codec.G722, "*0911", 60 * time.Millisecond, 140 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			rx := newReceiver(t)
			amp := startSipp(t, "amp.xml", 1, "rtp_port", rx.port(), "codec_pt", strconv.Itoa(int(tc.pt)), "codec_name", tc.name)
			cfg := outCfg(amp.uri("page"))
			cfg.ZoneCode = tc.code
			cfg.DigitOn, cfg.DigitGap = config.Duration(tc.on), config.Duration(tc.gap)
			out := r.output(t, cfg)
			ann := announcement()
			start := time.Now()
			if err := out.Play(context.Background(), playback(ann)); err != nil {
				t.Fatal(err)
			}
			amp.mustPass()

			pkts := rx.packets()
			digits := rfc4733Digits(t, pkts, 101)
			var keys string
			for _, d := range digits {
				keys += string(d.key)
			}
			if keys != tc.code {
				t.Fatalf("digits %q, want %q", keys, tc.code)
			}
			// Timing as the amplifier's DTMF receiver sees it: the RTP
			// timestamps (8 kHz) and durations the sender wrote, which
			// follow the sender's 20 ms clock; arrival times on a busy
			// test machine would not tell anything more. Each digit is
			// digit_on of event updates, the end packet three times (60
			// ms), then digit_gap of silence.
			const tick = 160 // 20 ms at 8 kHz
			frames := func(d time.Duration) uint32 { return uint32((d + 20*time.Millisecond - 1) / (20 * time.Millisecond)) }
			onTS := frames(tc.on) * tick
			spacing := (frames(tc.on) + 3 + frames(tc.gap)) * tick
			for i, d := range digits {
				if !d.marker {
					t.Errorf("digit %c: no marker bit on its first packet", d.key)
				}
				if d.ends != 3 {
					t.Errorf("digit %c: %d end packets, want 3", d.key, d.ends)
				}
				if d.duration != uint16(onTS) {
					t.Errorf("digit %c: duration %d, want %d (digit_on %v at 8 kHz)", d.key, d.duration, onTS, tc.on)
				}
				if want := int(frames(tc.on)) + 3; d.packets != want {
					t.Errorf("digit %c: %d packets, want %d (an update every 20 ms for digit_on, then the end three times)", d.key, d.packets, want)
				}
				if i > 0 {
					// The pacer skips (does not burst) after a stall of more
					// than 40 ms, which can shorten a spacing by whole ticks;
					// it can never lengthen it.
					sp := d.ts - digits[i-1].ts
					if sp > spacing || sp+3*tick < spacing {
						t.Errorf("digit %c starts %d timestamp units (%v) after the previous one, want %d (digit_on + 60 ms + digit_gap)",
							d.key, sp, time.Duration(sp)*time.Second/8000, spacing)
					}
				}
			}
			if d := digits[0].first.Sub(start); d < cfg.Settle.D() {
				t.Errorf("first digit %v after the call started, before the %v settle time", d, cfg.Settle)
			}

			audio, _ := audioOf(t, pkts, tc.pt, tc.codec)
			if audio == nil {
				t.Fatal("no audio received")
			}
			// Audio comes after every digit, in sending order and on the
			// shared RTP clock, at least after_code after the last digit's
			// end (less a possible skipped stall).
			firstAudio := -1
			for i, p := range pkts {
				if p.h.PayloadType == tc.pt {
					if firstAudio < 0 {
						firstAudio = i
					}
				} else if firstAudio >= 0 && p.h.PayloadType == 101 {
					t.Fatal("DTMF after the audio started")
				}
			}
			last := digits[len(digits)-1]
			gapTS := pkts[firstAudio].h.Timestamp - last.ts - onTS
			if want := uint32(cfg.AfterCode.D().Seconds() * 8000); gapTS+3*tick < want {
				t.Errorf("audio began %d timestamp units after the last digit's tone, want at least after_code %v (%d)", gapTS, cfg.AfterCode, want)
			}
			if n, want := len(audio), (len(ann)+codec.FrameSamples-1)/codec.FrameSamples*codec.FrameSamples; n != want {
				t.Errorf("%d samples of audio, want %d (the announcement in 20 ms frames)", n, want)
			}
			c, lag := bestCorrelation(ann, audio, 400)
			t.Logf("digits %q: first %v after the call; audio %v after the last tone; correlation %.4f at lag %d",
				keys, digits[0].first.Sub(start), time.Duration(gapTS)*time.Second/8000, c, lag)
			if c < 0.95 {
				t.Errorf("audio correlates %.3f (lag %d) with the announcement, want >= 0.95", c, lag)
			}
		})
	}
}

// A digest challenge is answered with the configured credentials (the
// scenario's verifyauth checks the response); a wrong password fails the
// page with the device's refusal.
func TestDigestChallenge(t *testing.T) {
	r := newRig(t)
	t.Run("good", func(t *testing.T) {
		t.Parallel()
		rx := newReceiver(t)
		amp := startSipp(t, "auth.xml", 1, "rtp_port", rx.port())
		cfg := outCfg(amp.uri("page"))
		cfg.Username, cfg.Password = "pager", "s3cret"
		cfg.Settle = 0
		if err := r.output(t, cfg).Play(context.Background(), playback(announcement()[:3200])); err != nil {
			t.Fatal(err)
		}
		amp.mustPass()
		if audio, _ := audioOf(t, rx.packets(), 0, codec.PCMU); len(audio) != 3200 {
			t.Errorf("%d samples after authentication, want 3200", len(audio))
		}
		if invites := amp.received("INVITE"); len(invites) != 2 || !strings.Contains(invites[1], `username="pager"`) {
			t.Errorf("INVITEs: %q", invites)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		rx := newReceiver(t)
		amp := startSipp(t, "auth.xml", 1, "rtp_port", rx.port())
		cfg := outCfg(amp.uri("page"))
		cfg.Username, cfg.Password = "pager", "wrong"
		err := r.output(t, cfg).Play(context.Background(), playback(announcement()))
		if sipstack.StatusCode(err) != 403 {
			t.Errorf("got %v, want the device's 403", err)
		}
		if ok, _ := amp.wait(); ok {
			t.Error("scenario passed a wrong password")
		}
	})
}

// A busy device fails the page at once with its 486, after the configured
// retry.
func TestBusy(t *testing.T) {
	r := newRig(t)
	amp := startSipp(t, "busy.xml", 2)
	cfg := outCfg(amp.uri("page"))
	cfg.Retry = 1
	start := time.Now()
	err := r.output(t, cfg).Play(context.Background(), playback(announcement()))
	if sipstack.StatusCode(err) != 486 || !strings.Contains(err.Error(), amp.uri("page")) {
		t.Fatalf("got %v, want 486 naming the URI", err)
	}
	// Generous bound for a loaded machine: the failure mode is waiting for
	// SIP timers (32 s), not milliseconds.
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("busy answer took %v to report", el)
	}
	amp.mustPass() // both INVITEs (the try and the retry) got their 486 and ACK
	if n := len(amp.received("INVITE")); n != 2 {
		t.Errorf("%d INVITEs, want 2 (retry 1)", n)
	}
}

// A device that rings and never answers: after answer_timeout the page
// fails with ErrNoAnswer and the call is CANCELled (the scenario requires
// the CANCEL).
func TestNoAnswer(t *testing.T) {
	r := newRig(t)
	amp := startSipp(t, "ring.xml", 1)
	cfg := outCfg(amp.uri("page"))
	cfg.Answer = config.Duration(time.Second)
	out := r.output(t, cfg)
	start := time.Now()
	err := out.Play(context.Background(), playback(announcement()))
	el := time.Since(start)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("got %v, want ErrNoAnswer", err)
	}
	if el < time.Second || el > 10*time.Second { // not Timer B (32 s)
		t.Errorf("gave up after %v, want about answer_timeout (1s)", el)
	}
	amp.mustPass()
	if err := out.Close(); err != nil {
		t.Error(err)
	}
}

// A device that starts ringing only after the page gave up on it (a busy
// device, a lost INVITE retransmitted): no CANCEL is allowed before a
// provisional response, so the call waits for the 180 in the background
// and CANCELs then (the scenario requires the CANCEL), instead of leaving
// the device ringing.
func TestLateRinging(t *testing.T) {
	r := newRig(t)
	amp := startSipp(t, "ring_late.xml", 1)
	cfg := outCfg(amp.uri("page"))
	cfg.Answer = config.Duration(time.Second)
	out := r.output(t, cfg)
	if err := out.Play(context.Background(), playback(announcement())); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("got %v, want ErrNoAnswer", err)
	}
	amp.mustPass()
}

// A device that never responds at all (unplugged, wrong address): the
// page fails after answer_timeout and nothing lingers (no CANCEL is
// possible without a provisional response, so nothing waits for Timer B).
func TestDeadDevice(t *testing.T) {
	r := newRig(t)
	hole, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	cfg := outCfg("sip:page@" + hole.LocalAddr().String())
	cfg.Answer = config.Duration(time.Second)
	out := r.output(t, cfg)
	if err := out.Play(context.Background(), playback(announcement())); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("got %v, want ErrNoAnswer", err)
	}
	closed := make(chan struct{})
	go func() { out.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second): // Timer B would be 32 s
		t.Fatal("Close still waiting for the dead device")
	}
}

// Cutting a page (pre-emption) while the device rings sends CANCEL, and
// while it plays sends BYE; Play returns ctx's error at once either way.
func TestCut(t *testing.T) {
	r := newRig(t)
	t.Run("ringing", func(t *testing.T) {
		t.Parallel()
		amp := startSipp(t, "ring.xml", 1)
		cfg := outCfg(amp.uri("page"))
		cfg.Answer = config.Duration(30 * time.Second)
		out := r.output(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := out.Play(ctx, playback(announcement()))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the context's error", err)
		}
		if el := time.Since(start); el > 5*time.Second { // answer_timeout is 30 s
			t.Errorf("Play returned %v after the start, 500ms cut", el)
		}
		amp.mustPass() // CANCEL, 487, ACK
	})
	t.Run("playing", func(t *testing.T) {
		t.Parallel()
		rx := newReceiver(t)
		amp := startSipp(t, "plain.xml", 1, "rtp_port", rx.port(), "codec_pt", "8", "codec_name", "PCMA")
		cfg := outCfg(amp.uri("page"))
		cfg.Settle = 0
		out := r.output(t, cfg)
		long := make([]int16, 0, 20*16000)
		for len(long) < 20*16000 {
			long = append(long, announcement()...)
		}
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { res <- out.Play(ctx, playback(long)) }()
		rx.waitFor(t, func(p packet) bool { return p.h.PayloadType == 8 })
		cut := time.Now()
		cancel()
		select {
		case err := <-res:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second): // the page is 20 s long
			t.Fatal("Play did not return after the cut")
		}
		amp.mustPass() // BYE
		var last time.Time
		for _, p := range rx.packets() {
			last = p.at
		}
		if last.Sub(cut) > time.Second { // of 20 s
			t.Errorf("audio went on %v after the cut", last.Sub(cut))
		}
	})
}

// In-band tones: with dtmf: inband (and as the fallback of rfc4733 when
// the device does not accept telephone-event) the zone code is audible in
// the G.711 audio before the page.
func TestZoneCodeInband(t *testing.T) {
	r := newRig(t)
	for _, mode := range []string{"inband", "rfc4733"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			rx := newReceiver(t)
			amp := startSipp(t, "plain.xml", 1, "rtp_port", rx.port(), "codec_pt", "0", "codec_name", "PCMU")
			cfg := outCfg(amp.uri("page"))
			cfg.DTMF, cfg.ZoneCode = mode, "0000099"
			cfg.DigitOn, cfg.DigitGap = config.Duration(80*time.Millisecond), config.Duration(60*time.Millisecond)
			cfg.Settle = 0
			ann := announcement()
			if err := r.output(t, cfg).Play(context.Background(), playback(ann)); err != nil {
				t.Fatal(err)
			}
			amp.mustPass()
			if mode == "inband" {
				inv := amp.received("INVITE")
				if len(inv) != 1 || strings.Contains(inv[0], "G722") || !strings.Contains(inv[0], "PCMU") {
					t.Errorf("in-band offer should hold G.711 only: %q", inv)
				}
			}
			pcm, _ := audioOf(t, rx.packets(), 0, codec.PCMU)
			runs := detectDTMF(pcm)
			var keys string
			for _, run := range runs {
				keys += string(run.key)
			}
			if keys != "0000099" {
				t.Fatalf("heard %q, want 0000099 (%+v)", keys, runs)
			}
			for i, run := range runs {
				if d := (run.end - run.start) * 1000 / codec.SampleRate; d < 60 || d > 100 {
					t.Errorf("tone %d lasts %d ms, want about 80", i, d)
				}
				if i > 0 {
					if g := (run.start - runs[i-1].end) * 1000 / codec.SampleRate; g < 40 || g > 90 {
						t.Errorf("gap before tone %d is %d ms, want about 60", i, g)
					}
				}
			}
			// The announcement follows the tones.
			after := pcm[runs[len(runs)-1].end:]
			if c, _ := bestCorrelation(ann, after, 2000); c < 0.95 {
				t.Errorf("audio after the tones correlates %.3f with the announcement", c)
			}
		})
	}
}

// SIP INFO: one application/dtmf-relay request per digit, in order (the
// scenario checks each body), before the audio.
func TestZoneCodeINFO(t *testing.T) {
	r := newRig(t)
	rx := newReceiver(t)
	amp := startSipp(t, "info.xml", 1, "rtp_port", rx.port())
	cfg := outCfg(amp.uri("page"))
	cfg.DTMF, cfg.ZoneCode = "info", "#12"
	cfg.Settle = 0
	start := time.Now()
	if err := r.output(t, cfg).Play(context.Background(), playback(announcement()[:1600])); err != nil {
		t.Fatal(err)
	}
	amp.mustPass()
	// Three digits, each held for digit_on, gaps between, then after_code.
	min := 3*cfg.DigitOn.D() + 2*cfg.DigitGap.D() + cfg.AfterCode.D()
	if el := time.Since(start); el < min {
		t.Errorf("page took %v, less than the digit timing allows (%v)", el, min)
	}
	// Each INFO goes out digit_on + digit_gap after the previous one (a
	// lower bound: a loaded machine may only add delay).
	at := amp.receivedAt("INFO")
	if len(at) != 3 {
		t.Fatalf("%d INFO requests in sipp's trace, want 3", len(at))
	}
	for i := 1; i < len(at); i++ {
		if sp := at[i].Sub(at[i-1]); sp < cfg.DigitOn.D()+cfg.DigitGap.D()-5*time.Millisecond {
			t.Errorf("INFO %d came %v after the previous one, want at least digit_on + digit_gap (%v)", i+1, sp, cfg.DigitOn.D()+cfg.DigitGap.D())
		}
	}
	if audio, _ := audioOf(t, rx.packets(), 0, codec.PCMU); len(audio) != 1600 {
		t.Errorf("%d samples of audio, want 1600", len(audio))
	}
}

// Every preset's headers reach the device (read back from sipp's trace).
func TestPresetHeadersOnTheWire(t *testing.T) {
	r := newRig(t)
	want := map[string][]string{
		"generic":   {"Call-Info: <sip:127.0.0.1>;answer-after=0", "Alert-Info: info=alert-autoanswer"},
		"yealink":   {"Call-Info: <sip:127.0.0.1>;answer-after=0", "Alert-Info: info=alert-autoanswer"},
		"polycom":   {"Alert-Info: Ring Answer"},
		"algo":      nil,
		"cyberdata": nil,
		"bogen":     nil,
		"valcom":    {"X-Zone: 3"},
	}
	for _, preset := range config.Presets {
		t.Run(preset, func(t *testing.T) {
			t.Parallel()
			amp := startSipp(t, "busy.xml", 1)
			cfg := outCfg(amp.uri("page"))
			cfg.Preset = preset
			if preset == "valcom" {
				cfg.Headers = []string{"X-Zone: 3"}
			}
			if err := r.output(t, cfg).Play(context.Background(), playback(announcement())); sipstack.StatusCode(err) != 486 {
				t.Fatalf("got %v", err)
			}
			amp.mustPass()
			inv := amp.received("INVITE")
			if len(inv) != 1 {
				t.Fatalf("%d INVITEs", len(inv))
			}
			for _, h := range want[preset] {
				if !strings.Contains(inv[0], h+"\r\n") && !strings.Contains(inv[0], h+"\n") {
					t.Errorf("INVITE lacks %q:\n%s", h, inv[0])
				}
			}
			for _, name := range []string{"Call-Info:", "Alert-Info:"} {
				if len(want[preset]) == 0 && strings.Contains(inv[0], name) {
					t.Errorf("preset %s should send no %s header:\n%s", preset, name, inv[0])
				}
			}
		})
	}
}
