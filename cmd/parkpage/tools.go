package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/relays"
)

// loadConfigFlag loads FILE, or the embedded default when path is empty,
// printing every problem.
func loadConfigFlag(path string, stderr io.Writer) (*config.Config, bool) {
	var (
		cfg *config.Config
		err error
	)
	if path == "" {
		cfg, err = config.LoadDefault()
	} else {
		cfg, _, err = config.Load(path)
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintln(stderr, p.String())
			}
		} else {
			fmt.Fprintf(stderr, "parkpage: %v\n", err)
		}
		return nil, false
	}
	return cfg, true
}

// cmdRender renders an announcement as a zone hears it: encoded in the
// zone's codec and decoded again, so the installer hears the codec too.
func cmdRender(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("render", stderr)
	cfgPath := fs.String("config", "", "config file for voice, chime, levels and templates (default: the embedded default)")
	text := fs.String("text", "", "text to speak")
	slot := fs.String("slot", "", "render this slot's announcement (its template, label, recording) instead of text")
	zone := fs.String("zone", "", "render for this zone: its template and (without -codec) its first output's codec")
	codecName := fs.String("codec", "", "pcmu, pcma, g722 or opus (default: the zone's, else g722)")
	voice := fs.String("voice", "", "TTS voice (default announce.voice)")
	chime := fs.String("chime", "", "chime: a built-in name, a .wav file or none (default announce.chime)")
	caller := fs.String("caller", "", "caller name for templates that say it")
	out := fs.String("o", "", "output WAV file (- for stdout)")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fs.SetOutput(stdout)
	}
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "parkpage render: "+format+"\n", a...)
		return 2
	}
	if *out == "" {
		return fail("-o OUT.wav is required")
	}
	if (*text == "") == (*slot == "") {
		return fail("give -text or -slot")
	}
	cfg, ok := loadConfigFlag(*cfgPath, stderr)
	if !ok {
		return 1
	}
	req, c, err := announcementFor(cfg, *text, *slot, *zone, *codecName, *caller)
	if err != nil {
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return fail("%s", fe.Msg)
		}
		return fail("%v", err)
	}
	if *voice != "" {
		req.Voice = *voice
	}
	if *chime != "" {
		req.Chime = *chime
	}
	audio, err := announce.NewService(cfg.Announce)
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := audio.Get(ctx, req)
	if err != nil {
		return fail("%v", err)
	}
	var w io.Writer = stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			return fail("%v", err)
		}
		w = f
	}
	bw := bufio.NewWriter(w)
	if err := announce.WriteHeard(bw, r, c); err != nil {
		return fail("%v", err)
	}
	if err := bw.Flush(); err != nil {
		return fail("%v", err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "%s: %q, %s, %.2f s, rendered in %v\n", *out, r.Request.Text, c, r.Duration().Seconds(), r.RenderTime.Round(time.Millisecond))
	}
	return 0
}

// cmdRelaysOff drives every configured relay off. A service manager runs it
// after the appliance exits (systemd ExecStopPost, gokrazy's restart hook),
// so a crash never leaves an amplifier keyed or a zone selected.
func cmdRelaysOff(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("relays-off", stderr)
	cfgPath := fs.String("config", "", "config file (default: the embedded default)")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fs.SetOutput(stdout)
	}
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	cfg, ok := loadConfigFlag(*cfgPath, stderr)
	if !ok {
		return 1
	}
	return relaysOff(cfg, relays.HostResolver(), stdout, stderr)
}

func relaysOff(cfg *config.Config, resolve relays.Resolver, stdout, stderr io.Writer) int {
	if len(cfg.Relays) == 0 {
		fmt.Fprintln(stdout, "no relays configured")
		return 0
	}
	if err := relays.AllOff(relays.ConfigOf(cfg), resolve); err != nil {
		fmt.Fprintf(stderr, "parkpage relays-off: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d relays off\n", len(cfg.Relays))
	return 0
}
