package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkpage/parkpage/gateway/announcer"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/output/sipamp"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// setupHooks are the setup console's output tests and "hear it" player.
func (c *core) setupHooks(a *app.App) app.SetupHooks {
	return app.SetupHooks{
		TestOutputs: func(ctx context.Context, req api.OutputTestRequest) (api.OutputTestResult, error) {
			return c.testOutputs(ctx, a.Config(), req)
		},
		Hear: func(ctx context.Context, req api.HearRequest) ([]byte, error) {
			return hear(ctx, c.audio, a.Config(), req)
		},
	}
}

// testPageLimit bounds how long an output test waits for its page.
const testPageLimit = 2 * time.Minute

// testOutputs pages a short test announcement (or the chime alone) on a
// zone, or one output of it, at test priority, waits for the page to end
// and reports each output's result.
func (c *core) testOutputs(ctx context.Context, cfg *config.Config, req api.OutputTestRequest) (api.OutputTestResult, error) {
	z := cfg.Zones[req.Zone]
	if z == nil {
		return api.OutputTestResult{}, &api.FieldError{Field: "zone", Msg: fmt.Sprintf("no zone %q (zones: %s)", req.Zone, strings.Join(announcer.ZoneNames(cfg), ", "))}
	}
	text := req.Text
	var only []string
	if req.Output != nil {
		i := *req.Output
		if i >= len(z.Outputs) {
			return api.OutputTestResult{}, &api.FieldError{Field: "output", Msg: fmt.Sprintf("zone %q has %d outputs", req.Zone, len(z.Outputs))}
		}
		only = []string{output.Name(req.Zone, i)}
		if text == "" {
			text = fmt.Sprintf("This is a test of zone %s, output %d.", spoken(req.Zone), i+1)
		}
	}
	if text == "" {
		text = fmt.Sprintf("This is a test of zone %s.", spoken(req.Zone))
	}
	var audio output.Audio
	if req.Tone {
		text = ""
		chime := cfg.Announce.Chime
		if chime == "none" {
			chime = "two-tone"
		}
		pcm, err := announce.ChimePCM(announce.Config{Chime: chime, TargetDBFS: cfg.Announce.Loudness, CeilingDBFS: cfg.Announce.Peak}, chime)
		if err != nil {
			return api.OutputTestResult{}, err
		}
		lead := make([]int16, int(cfg.Announce.LeadIn.D()*codec.SampleRate/time.Second)/codec.FrameSamples*codec.FrameSamples)
		audio = announcer.Audio{R: &announce.Rendered{PCM: append(lead, pcm...)}}
	} else {
		r, err := c.audio.Get(ctx, announce.Request{Text: text, Voice: cfg.Announce.Voice, Chime: cfg.Announce.Chime, Repeat: 1})
		if err != nil {
			return api.OutputTestResult{}, &api.FieldError{Field: "text", Msg: err.Error()}
		}
		audio = announcer.Audio{R: r}
	}
	var mu sync.Mutex
	var got []paging.OutputResult
	h, err := c.gw.Submit(context.WithoutCancel(ctx), paging.Page{
		Priority: output.PriorityTest,
		Zones:    []string{req.Zone},
		Audio:    audio,
		Text:     text,
		CallerID: "Test",
		Outputs:  only,
		OnOutput: func(r paging.OutputResult) {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
		},
	})
	if err != nil {
		return api.OutputTestResult{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, testPageLimit)
	defer cancel()
	reason, err := h.Wait(wctx)
	if err != nil {
		h.Cancel()
		return api.OutputTestResult{}, fmt.Errorf("test page %s: %w", h.ID(), err)
	}
	mu.Lock()
	defer mu.Unlock()
	return testResult(h.ID(), req.Zone, text, string(reason), z, only, got), nil
}

// testResult lists every output tested, in zone order, with what happened;
// an output the page never reached (it expired waiting, was cut before
// it started) says so.
func testResult(page, zone, text, reason string, z *config.Zone, only []string, got []paging.OutputResult) api.OutputTestResult {
	res := api.OutputTestResult{Page: page, Zone: zone, Text: text, Reason: reason, Outputs: []api.OutputResult{}}
	byName := map[string]paging.OutputResult{}
	for _, r := range got {
		byName[r.Output] = r
	}
	for i, o := range z.Outputs {
		name := output.Name(zone, i)
		if only != nil && !slices.Contains(only, name) {
			continue
		}
		row := api.OutputResult{Output: name, Index: i, Type: o.Type, Address: outputAddress(o)}
		if r, ok := byName[name]; ok {
			row.Status, row.Detail, row.OK = outputStatus(o.Type, r)
			row.Took = r.Took.Seconds()
		} else {
			row.Status, row.Detail = "not played", "the page ended ("+reason+") before this output played"
		}
		res.Outputs = append(res.Outputs, row)
	}
	if len(z.Relays) > 0 {
		row := api.OutputResult{Output: zone + "/relays", Index: -1, Type: "relay", Address: strings.Join(z.Relays, ", ")}
		if r, ok := byName[row.Output]; ok {
			row.Status, row.Detail, row.OK = outputStatus("relay", r)
			row.Took = r.Took.Seconds()
		} else {
			row.Status, row.Detail = "not switched", "the page ended ("+reason+") before the relays switched"
		}
		res.Outputs = append(res.Outputs, row)
	}
	return res
}

// outputStatus says in an installer's words how an output did: a SIP
// amplifier answered, was busy or did not answer; a multicast page was
// sent; a line out played; relays pulsed.
func outputStatus(typ string, r paging.OutputResult) (status, detail string, ok bool) {
	if r.Cut {
		return "cut", "a higher-priority page cut the test", false
	}
	if r.Err == nil {
		switch typ {
		case config.OutputPolycom, config.OutputRTP:
			return "sent", "", true
		case config.OutputSIP:
			return "answered", "", true
		case config.OutputLineOut:
			return "played", "", true
		case "relay":
			return "pulsed", "", true
		}
		return "ok", "", true
	}
	detail = r.Err.Error()
	var se *sipstack.StatusError
	switch {
	case errors.Is(r.Err, sipamp.ErrNoAnswer):
		return "no answer", detail, false
	case errors.Is(r.Err, sipamp.ErrHungUp):
		return "hung up", detail, false
	case errors.As(r.Err, &se) && (se.Code == 486 || se.Code == 600):
		return "busy", detail, false
	case errors.As(r.Err, &se):
		return "rejected", detail, false
	}
	return "failed", detail, false
}

func outputAddress(o *config.Output) string {
	switch o.Type {
	case config.OutputPolycom:
		return fmt.Sprintf("%s:%d channel %d", o.Group, o.Port, o.Channel)
	case config.OutputRTP:
		return fmt.Sprintf("%s:%d", o.Group, o.Port)
	case config.OutputSIP:
		return o.URI
	case config.OutputLineOut:
		return o.Device
	}
	return ""
}

// spoken makes a zone name sayable: "front-desk" → "front desk".
func spoken(name string) string {
	return strings.NewReplacer("-", " ", "_", " ").Replace(name)
}

// hear renders what a slot (or a text) announces on a zone, encoded in
// the zone's codec and decoded back, as a WAV file.
func hear(ctx context.Context, audio *announce.Service, cfg *config.Config, req api.HearRequest) ([]byte, error) {
	if req.Zone == "" && req.Slot != "" {
		// As the slot's first zone hears it.
		if rule, ok := announcer.RuleFor(cfg, req.Slot); ok && len(rule.Zones) > 0 {
			req.Zone = rule.Zones[0]
		}
	}
	areq, c, err := announcementFor(cfg, req.Text, req.Slot, req.Zone, req.Codec, "")
	if err != nil {
		return nil, err
	}
	r, err := audio.Get(ctx, areq)
	if err != nil {
		return nil, &api.FieldError{Field: "text", Msg: err.Error()}
	}
	var buf bytes.Buffer
	if err := announce.WriteHeard(&buf, r, c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// announcementFor is the announcement of a text, or of a slot (its
// template, label and recording), as zone hears it, and the codec it
// hears it in: codecName, else the zone's first output's codec, else
// G.722. A bad argument is an *api.FieldError naming it.
func announcementFor(cfg *config.Config, text, slot, zone, codecName, caller string) (announce.Request, codec.Name, error) {
	if zone != "" && cfg.Zones[zone] == nil {
		return announce.Request{}, "", &api.FieldError{Field: "zone", Msg: fmt.Sprintf("no zone %q (zones: %s)", zone, strings.Join(announcer.ZoneNames(cfg), ", "))}
	}
	c := codec.Name(codecName)
	if c == "" {
		c = codec.G722
		if zone != "" {
			if cs := announcer.Codecs(cfg, []string{zone}); len(cs) > 0 {
				c = cs[0]
			}
		}
	}
	if !slices.Contains([]codec.Name{codec.PCMU, codec.PCMA, codec.G722, codec.Opus}, c) {
		return announce.Request{}, "", &api.FieldError{Field: "codec", Msg: fmt.Sprintf("%q is not pcmu, pcma, g722 or opus", c)}
	}
	if (text == "") == (slot == "") {
		return announce.Request{}, "", &api.FieldError{Field: "text", Msg: "give text or slot"}
	}
	req := announce.Request{Text: text, Voice: cfg.Announce.Voice, Chime: cfg.Announce.Chime, Repeat: cfg.Announce.Repeat}
	if slot != "" {
		rule, ok := announcer.RuleFor(cfg, slot)
		if !ok {
			return announce.Request{}, "", &api.FieldError{Field: "slot", Msg: fmt.Sprintf("%q is not a configured park slot", slot)}
		}
		zones := rule.Zones
		if zone != "" {
			zones = []string{zone}
		}
		if len(zones) == 0 {
			zones = []string{""}
		}
		specs, err := announcer.Compose(cfg, rule, announce.Fields{Caller: caller}, zones[:1])
		if err != nil {
			return announce.Request{}, "", &api.FieldError{Field: "slot", Msg: err.Error()}
		}
		req = specs[0].Request
	}
	return req, c, nil
}
