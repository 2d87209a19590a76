package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/resample"
	"github.com/parkpage/parkpage/internal/codec/wav"
)

// soundsDir holds Debian's Asterisk core sounds (asterisk-core-sounds-en-wav
// at 8 kHz, -g722 at 16 kHz): Allison Smith's professional recordings of
// the same prompts at both rates.
const soundsDir = "/usr/share/asterisk/sounds/en"

// humanPrompts are Asterisk core prompts with their transcripts (from the
// sounds' own core-sounds-en.txt, CC-BY-SA 3.0, Digium): clean human
// speech with a known text, to tell "the recogniser fails at 8 kHz" from
// "the render is unclear".
var humanPrompts = []struct{ file, text string }{
	{"agent-alreadyon", "That agent is already logged on. Please enter your agent number followed by the pound key."},
	{"agent-newlocation", "Please enter a new extension, followed by pound."},
	{"agent-pass", "Please enter your password followed by the pound key."},
	{"all-circuits-busy-now", "All circuits are busy now."},
	{"auth-incorrect", "Password incorrect. Please enter your password followed by the pound key."},
	{"cannot-complete-as-dialed", "Your call cannot be completed as dialed."},
	{"check-number-dial-again", "Please check the number and dial again."},
	{"conf-getchannel", "Please enter the channel number followed by the pound key."},
	{"conf-getconfno", "Please enter your conference number followed by the pound key."},
	{"conf-getpin", "Please enter the conference pin number."},
	{"conf-invalid", "That is not a valid conference number. Please try again."},
	{"conf-invalidpin", "That pin is invalid for this conference."},
	{"conf-leaderhasleft", "The leader has left the conference."},
	{"conf-now-recording", "The conference is now being recorded."},
	{"conf-onlyperson", "You are currently the only person in this conference."},
	{"conf-placeintoconf", "You will now be placed into the conference."},
	{"conf-waitforleader", "The conference will begin when the leader arrives."},
	{"confbridge-only-participant", "You are currently the only participant in the conference."},
	{"confbridge-removed", "You have been removed from the conference."},
	{"confbridge-unmuted", "You are no longer muted."},
	{"demo-echodone", "The echo test has been completed."},
	{"dir-nomatch", "No directory entries match your search."},
	{"enter-num-blacklist", "Please enter the number to be blacklisted."},
	{"feature-not-avail-line", "That feature is not available on this line."},
	{"followme/pls-hold-while-try", "please hold while I try to locate the person you are calling"},
	{"followme/status", "the person you are calling is not at their desk; I will try to locate them for you"},
	{"conf-full", "That conference is full."},
	{"conf-kicked", "You have been kicked from this conference"},
}

// validate runs the open-vocabulary recogniser on human speech: each
// prompt's 16 kHz G.722 recording as a G.722 phone hears it (the wideband
// ceiling), the same recording taken down to 8 kHz and through µ-law
// exactly as a G.711 render is (our path), and Asterisk's own 8 kHz WAV
// (recorded narrowband), each of the last two through every -nb setup.
func validate(cfg config, nbs []narrowband) error {
	var items []*item
	for _, hp := range humanPrompts[:min(cfg.nPrompts, len(humanPrompts))] {
		words := strings.Fields(strings.Map(func(r rune) rune {
			if strings.ContainsRune(".,;!?", r) {
				return -1
			}
			return r
		}, strings.ToLower(hp.text)))
		g, err := os.ReadFile(filepath.Join(soundsDir, hp.file+".g722"))
		if err != nil {
			return fmt.Errorf("%w (install asterisk-core-sounds-en-g722)", err)
		}
		dec, err := codec.NewDecoder(codec.G722)
		if err != nil {
			return err
		}
		var wide []int16
		for len(g) > 0 {
			n := min(len(g), 160)
			if wide, err = dec.Decode(wide, g[:n]); err != nil {
				return err
			}
			g = g[n:]
		}
		f, err := os.Open(filepath.Join(soundsDir, hp.file+".wav"))
		if err != nil {
			return fmt.Errorf("%w (install asterisk-core-sounds-en-wav)", err)
		}
		format, own8, err := wav.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s.wav: %w", hp.file, err)
		}
		if format.SampleRate != 8000 || format.Channels != 1 {
			return fmt.Errorf("%s.wav: %d Hz × %d channels, want 8000 Hz mono", hp.file, format.SampleRate, format.Channels)
		}
		ulaw := resample.Downsample16to8(nil, wide)
		for i, s := range ulaw {
			ulaw[i] = codec.ULawToLinear(codec.LinearToULaw(s))
		}
		path, err := writeWAV(cfg.cache, 16000, wide)
		if err != nil {
			return err
		}
		items = append(items, &item{voice: "Allison (human)", codec: "g722 recording", label: hp.file, spoken: words, wav: path})
		for _, src := range []struct {
			name codec.Name
			pcm  []int16
		}{{"µ-law from the 16 kHz recording", ulaw}, {"Asterisk's 8 kHz WAV", own8}} {
			p8, err := writeWAV(cfg.cache, 8000, src.pcm)
			if err != nil {
				return err
			}
			up, err := resample.Resample(src.pcm, 8000, 16000)
			if err != nil {
				return err
			}
			p16, err := writeWAV(cfg.cache, 16000, up)
			if err != nil {
				return err
			}
			items = append(items, perSetup(&item{voice: "Allison (human)", codec: src.name, label: hp.file, spoken: words, wav: p16, wav8: p8}, nbs)...)
		}
	}
	fmt.Fprintf(os.Stderr, "speechbench: validating on %d human recordings (%d recognitions)\n", min(cfg.nPrompts, len(humanPrompts)), len(items))
	if err := recognise(items, cfg.jobs, "", ""); err != nil {
		return err
	}
	type agg struct{ n, exact, errs, refs int }
	var order []string
	rows := map[string]*agg{}
	for _, it := range items {
		k := fmt.Sprintf("| %s | %s |", it.codec, it.nb)
		a := rows[k]
		if a == nil {
			a = &agg{}
			rows[k] = a
			order = append(order, k)
		}
		ref, hyp := tokens(it.spoken), tokens(strings.Fields(it.open))
		e := wordErrors(ref, hyp)
		a.n++
		a.errs += e
		a.refs += len(ref)
		if e == 0 {
			a.exact++
		}
		if cfg.verbose {
			fmt.Fprintf(os.Stderr, "%s %s %s: %q\n", it.codec, it.nb, it.label, it.open)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| human speech | recogniser setup | prompts | word error rate | prompts word-perfect |\n|---|---|---|---|---|\n")
	for _, k := range order {
		a := rows[k]
		fmt.Fprintf(&b, "%s %d | **%.0f %%** | %.0f %% |\n", k, a.n, 100*float64(a.errs)/float64(max(a.refs, 1)), 100*float64(a.exact)/float64(max(a.n, 1)))
	}
	fmt.Print(b.String())
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(b.String()), 0o644)
	}
	return nil
}
