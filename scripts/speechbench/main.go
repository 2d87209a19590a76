// Command speechbench measures how intelligible parkpage's announcements
// are: it renders "{label} call on {slot}" for every slot × label × codec ×
// voice × paging setting as a zone hears it (encoded and decoded again,
// chime off), and runs Debian's pocketsphinx on each render twice:
//
//   - open vocabulary: the general en-us model with its full language
//     model and dictionary and no grammar, a rough stand-in for a listener
//     who does not know what is coming. A render is understood when both
//     the label's words and the slot's digits come back. It also reports
//     the word error rate against the words spoken.
//   - closed grammar: a JSGF grammar of park phrases (any label, "call
//     on", any slot, said once or more). It must never name the wrong slot.
//
// G.711 renders (8 kHz) are resampled to 16 kHz for the 16 kHz model (-nb
// up), as a wideband listener would hear a narrowband phone: Debian has no
// 8 kHz acoustic model, and of the ways to feed it narrowband speech this
// one and fold:D lose least on human speech, about equally on our G.711
// path, while the usual -samprate 8000 -upperf advice fails outright
// (-validate measures them on Allison's Asterisk prompts, 16 kHz against
// 8 kHz; README, "How announcements sound"). Recognition results are cached by the render's SHA-256
// (-cache), so a rerun only recognises what changed; pocketsphinx_batch
// runs -j at a time, 16 renders per run so its language model loads once
// per chunk.
//
// It is a measurement, not a test: `make bench` runs it and prints the
// Markdown table the README quotes. Digit homophones count as the digit
// ("for" is 4, "to" is 2, "o" is 0): a listener hears sounds, the
// recogniser picks a spelling.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/resample"
	"github.com/parkpage/parkpage/internal/codec/wav"
)

// Labels are the park-slot labels measured: the ten of issue 16's first
// measurement, then ten more a site might use.
var Labels = []string{
	"Sales", "Warehouse", "Service", "Parts", "Shipping", "Accounting", "Support", "Reception", "Showroom", "Manager",
	"Receiving", "Billing", "Security", "Maintenance", "Dispatch", "Pharmacy", "Kitchen", "Front desk", "Loading dock", "Customer service",
}

const modelDir = "/usr/share/pocketsphinx/model/en-us"

func main() {
	var (
		voices   = flag.String("voices", "slt,kal16,awb,rms,prompts", "voices, comma separated; prompts+V: voice prompts with V for the words no recording covers; bench-only candidates: espeak (espeak-ng), pico (pico2wave, or $PICO2WAVE; skipped when missing), rhvoice-slt, rhvoice-bdl, rhvoice-clb, rhvoice-alan, rhvoice-evgeniy (RHVoice-test, or $RHVOICE_TEST: make rhvoice; skipped when missing)")
		codecs   = flag.String("codecs", "g722,pcmu,pcma,opus", "codecs, comma separated")
		variants = flag.String("paging", "plain;default", "paging settings, ';' separated: plain, default, or default with changes, e.g. default,gap=200ms,repeat=1 (keys: rate gap repeat gain hp presence zero)")
		nLabels  = flag.Int("labels", len(Labels), "how many labels (the first N)")
		slots    = flag.String("slots", "701-710", "slots, a range or a comma list")
		jobs     = flag.Int("j", runtime.NumCPU(), "recognisers run in parallel")
		cacheDir = flag.String("cache", defaultCache(), "cache of renders and recognition results")
		out      = flag.String("o", "", "also write the Markdown table to this file")
		verbose  = flag.Bool("v", false, "print every render's hypotheses")
		peek     = flag.Bool("cached", false, "report only what is already recognised (a look at a run in progress)")
		nbSpec   = flag.String("nb", "up", "how G.711 renders reach the 16 kHz model, comma separated (one row each): up (upsampled to 16 kHz), 8k:F (at 8 kHz, the filterbank squeezed to F Hz) or fold:D (upsampled, the 4-8 kHz image left D dB down); -validate compares them")
		template = flag.String("template", announce.DefaultTemplate, "announcement template; {label} and {slot} with any words around them; the closed grammar follows it")
		nPrompts = flag.Int("prompts", len(humanPrompts), "-validate: how many prompts (the first N)")
		validate = flag.Bool("validate", false, "instead of renders, recognise Allison's Asterisk prompts (human speech) at 16 kHz (G.722) and at 8 kHz through each -nb setup: how far the recogniser itself fails on narrowband speech")
		pairs    = flag.Bool("pairs", false, "a quick run: each label with one slot (label i, slot i mod slots) instead of every slot")
	)
	flag.Parse()
	if err := run(config{
		voices: split(*voices, ","), codecs: split(*codecs, ","), variants: split(*variants, ";"),
		labels: Labels[:min(*nLabels, len(Labels))], slotSpec: *slots, jobs: *jobs, cache: *cacheDir, out: *out, verbose: *verbose, pairs: *pairs, cachedOnly: *peek, nb: *nbSpec, validate: *validate, nPrompts: *nPrompts, template: *template,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "speechbench:", err)
		os.Exit(1)
	}
}

func defaultCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "parkpage-speechbench")
	}
	return filepath.Join(os.TempDir(), "parkpage-speechbench")
}

func split(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

type config struct {
	voices, codecs, variants, labels []string
	slotSpec                         string
	jobs                             int
	cache, out, nb, template         string
	verbose, pairs, cachedOnly       bool
	validate                         bool
	nPrompts                         int
}

// item is one render to recognise.
type item struct {
	variant, voice string
	codec          codec.Name
	label, slot    string
	spoken         []string   // reference words
	repeat         int        // times the slot is said
	wav            string     // path in the cache: 16 kHz
	wav8           string     // G.711 only: the same render at its own 8 kHz
	nb             narrowband // G.711 only: how it reaches the recogniser
	open, gram     string     // hypotheses
}

// ParseSlots reads "701-710" or "701,702".
func ParseSlots(spec string) ([]string, error) {
	if a, b, ok := strings.Cut(spec, "-"); ok {
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo > hi {
			return nil, fmt.Errorf("slots %q: want N-M", spec)
		}
		var out []string
		for n := lo; n <= hi; n++ {
			out = append(out, strconv.Itoa(n))
		}
		return out, nil
	}
	return split(spec, ","), nil
}

// ParsePaging reads a paging setting: "plain", "default", or either with
// ",key=value" changes.
func ParsePaging(spec string) (announce.Paging, error) {
	fields := split(spec, ",")
	if len(fields) == 0 {
		return announce.Paging{}, errors.New("empty paging setting")
	}
	var p announce.Paging
	switch fields[0] {
	case "plain":
		p = announce.Paging{Off: true}
	case "default":
		p = announce.DefaultPaging()
	default:
		return p, fmt.Errorf("paging %q: start with plain or default", spec)
	}
	for _, kv := range fields[1:] {
		k, v, _ := strings.Cut(kv, "=")
		f, err := strconv.ParseFloat(v, 64)
		if k == "gap" {
			var d time.Duration
			d, err = time.ParseDuration(v)
			p.DigitGap = d
		}
		if err != nil {
			return p, fmt.Errorf("paging %q: %s: %v", spec, k, err)
		}
		p.Off = false
		switch k {
		case "gap":
		case "rate":
			p.Rate = f
		case "repeat":
			p.NumberRepeat = int(f)
		case "gain":
			p.NumberGainDB = f
		case "hp":
			p.HighPassHz = f
		case "presence":
			p.PresenceDB = f
		case "zero":
			p.Zero = f != 0
		default:
			return p, fmt.Errorf("paging %q: unknown key %q", spec, k)
		}
	}
	return p, p.Validate()
}

func run(cfg config) error {
	for _, tool := range []string{"pocketsphinx_batch"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install pocketsphinx and pocketsphinx-en-us (make bench does)", tool)
		}
	}
	if err := os.MkdirAll(cfg.cache, 0o755); err != nil {
		return err
	}
	slots, err := ParseSlots(cfg.slotSpec)
	if err != nil {
		return err
	}
	gram, dict, err := writeGrammar(cfg.cache, cfg.template, cfg.labels, slots)
	if err != nil {
		return err
	}
	var nbs []narrowband
	for _, spec := range split(cfg.nb, ",") {
		nb, err := parseNarrowband(spec, cfg.cache)
		if err != nil {
			return err
		}
		nbs = append(nbs, nb)
	}
	if len(nbs) == 0 {
		return errors.New("-nb: no narrowband setup")
	}
	if cfg.validate {
		return validate(cfg, nbs)
	}
	var items []*item
	start := time.Now()
	binHash, err := executableHash()
	if err != nil {
		return err
	}
	var skipped, notes []string
	for _, vs := range cfg.variants {
		p, err := ParsePaging(vs)
		if err != nil {
			return err
		}
		for _, voice := range cfg.voices {
			rc, skip := voiceConfigFor(voice, p)
			if skip != nil {
				if !slices.Contains(skipped, voice) {
					skipped = append(skipped, voice)
					notes = append(notes, fmt.Sprintf("voice %s skipped: %v", voice, skip))
					fmt.Fprintf(os.Stderr, "speechbench: voice %s skipped (its rows only): %v\n", voice, skip)
				}
				continue
			}
			r, err := announce.NewRenderer(rc)
			if err != nil {
				return err
			}
			for _, cn := range cfg.codecs {
				for li, label := range cfg.labels {
					for si, slot := range slots {
						if cfg.pairs && si != li%len(slots) {
							continue
						}
						it, err := render(r, cfg.cache, binHash, cfg.template, vs, voice, codec.Name(cn), label, slot, p)
						if err != nil {
							return err
						}
						items = append(items, perSetup(it, nbs)...)
					}
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "speechbench: %d renders in %v; recognising (%d at a time, cache %s)\n", len(items), time.Since(start).Round(time.Millisecond), cfg.jobs, cfg.cache)
	if cfg.cachedOnly {
		items = slices.DeleteFunc(items, func(it *item) bool {
			for _, g := range []bool{false, true} {
				if _, err := os.Stat(hypPath(it, g, gram)); err != nil {
					return true
				}
			}
			return false
		})
	}
	if err := recognise(items, cfg.jobs, gram, dict); err != nil {
		return err
	}
	table := report(items, cfg.verbose)
	for _, n := range notes {
		table += "\n" + n + "\n"
	}
	fmt.Print(table)
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(table), 0o644)
	}
	return nil
}

// voiceConfig is the renderer config of a bench voice (chime off), or
// why the voice cannot speak on this machine: its rows are skipped.
func voiceConfig(voice string) (rc announce.Config, skip error) {
	return voiceConfigFor(voice, announce.Paging{})
}

// voiceConfigFor is voiceConfig for renders with paging speech p: an
// RHVoice voice takes p's rate itself (flite's take it from the
// renderer; a custom speaker ignores the renderer's stretch).
func voiceConfigFor(voice string, p announce.Paging) (rc announce.Config, skip error) {
	// "prompts+kal16": voice prompts with kal16 for uncovered words.
	v, fallback, _ := strings.Cut(voice, "+")
	rc = announce.Config{Voice: v, PromptFallback: fallback, Chime: announce.ChimeNone}
	switch v {
	case "espeak":
		// A candidate engine, run as a separate process (eSpeak NG is
		// GPL-3.0: never linked in).
		rc.NewSpeaker = func(string) (announce.Speaker, error) { return espeak{}, nil }
	case "pico":
		// A candidate engine, bench-only (see pico.go). Like espeak it
		// takes the same paging speech (pieces, "zero", the slot twice,
		// levels, equaliser) but ignores speech.rate: it speaks at its
		// own rate.
		sp, err := findPico()
		if err != nil {
			return rc, err
		}
		rc.NewSpeaker = func(string) (announce.Speaker, error) { return sp, nil }
	default:
		if !strings.HasPrefix(v, "rhvoice-") {
			break
		}
		name, ok := rhvoiceName(v)
		if !ok {
			return rc, fmt.Errorf("no RHVoice voice %q (rhvoice-slt, -bdl, -clb, -alan, -evgeniy)", v)
		}
		// A candidate engine, bench-only (see rhvoice.go): the same
		// paging speech as every voice, at the paging rate.
		stretch := 1.0
		if !p.Off && p.Rate != 0 {
			stretch = p.Rate
		}
		sp, err := findRHVoice(name, rhvoiceRate(stretch))
		if err != nil {
			return rc, err
		}
		rc.NewSpeaker = func(string) (announce.Speaker, error) { return sp, nil }
	}
	return rc, nil
}

// executableHash identifies this build: a render made by the same
// binary with the same parameters is the same, so its WAV is reused.
func executableHash() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func render(r *announce.Renderer, cache, binHash, tmpl, variant, voice string, c codec.Name, label, slot string, p announce.Paging) (*item, error) {
	repeat := 1
	if !p.Off && p.NumberRepeat > 1 {
		repeat = p.NumberRepeat
	}
	spoken := spokenWords(tmpl, label, slot, repeat)
	if tmpl != announce.DefaultTemplate {
		variant += " «" + tmpl + "»"
	}
	it := &item{variant: variant, voice: voice, codec: c, label: label, slot: slot, spoken: spoken, repeat: repeat}
	isum := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%+v|%s|%s|%s|%s", binHash, variant, p, voice, c, label, slot)))
	index := filepath.Join(cache, "index", hex.EncodeToString(isum[:12]))
	if b, err := os.ReadFile(index); err == nil {
		it.wav, it.wav8, _ = strings.Cut(string(b), "\n")
		return it, nil
	}
	text, err := announce.Phrase(tmpl, announce.Fields{Label: label, Slot: slot})
	if err != nil {
		return nil, err
	}
	out, err := r.Render(context.Background(), announce.Request{Text: text, Paging: p})
	if err != nil {
		return nil, err
	}
	pcm, rate, err := announce.Heard(out, c)
	if err != nil {
		return nil, err
	}
	var wav8 string
	if rate == 8000 {
		if wav8, err = writeWAV(cache, 8000, pcm); err != nil {
			return nil, err
		}
	}
	if rate != 16000 {
		if pcm, err = resample.Resample(pcm, rate, 16000); err != nil {
			return nil, err
		}
	}
	path, err := writeWAV(cache, 16000, pcm)
	if err != nil {
		return nil, err
	}
	it.wav, it.wav8 = path, wav8
	if err := os.MkdirAll(filepath.Dir(index), 0o755); err != nil {
		return nil, err
	}
	return it, os.WriteFile(index, []byte(path+"\n"+wav8), 0o644)
}

// writeWAV stores pcm in the cache under its content's hash.
func writeWAV(cache string, rate int, pcm []int16) (string, error) {
	var buf bytes.Buffer
	if err := wav.Write(&buf, rate, 1, pcm); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(cache, hex.EncodeToString(sum[:12])+".wav")
	if _, err := os.Stat(path); err != nil {
		// Through a temporary name: another run sharing the cache must
		// never recognise half a file.
		tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
		if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", err
		}
	}
	return path, nil
}

// writeGrammar writes the closed grammar and a dictionary of its words.
func writeGrammar(cache, tmpl string, labels, slots []string) (gram, dict string, err error) {
	var ls, ss []string
	words := map[string]bool{}
	rule, err := grammarRule(tmpl)
	if err != nil {
		return "", "", err
	}
	for _, w := range strings.Fields(rule) {
		if !strings.HasPrefix(w, "<") {
			words[w] = true
		}
	}
	for _, l := range labels {
		l = strings.ToLower(l)
		ls = append(ls, l)
		for _, w := range strings.Fields(l) {
			words[w] = true
		}
	}
	words["zero"] = true
	for _, s := range slots {
		// A 0 may be said "oh" or "zero" (Paging.Zero): the grammar takes
		// either.
		var alt []string
		for _, w := range strings.Fields(announce.SpeakNumber(s)) {
			words[w] = true
			if w == "oh" || w == "zero" {
				w = "(oh | zero)"
			}
			alt = append(alt, w)
		}
		ss = append(ss, strings.Join(alt, " "))
	}
	g := fmt.Sprintf("#JSGF V1.0;\ngrammar park;\npublic <park> = %s;\n<label> = %s;\n<slot> = %s;\n",
		rule, strings.Join(ls, " | "), strings.Join(ss, " | "))
	cmu, err := os.ReadFile(filepath.Join(modelDir, "cmudict-en-us.dict"))
	if err != nil {
		return "", "", err
	}
	var d strings.Builder
	found := map[string]bool{}
	for _, line := range strings.Split(string(cmu), "\n") {
		w, _, _ := strings.Cut(line, " ")
		base, _, _ := strings.Cut(w, "(")
		if words[base] {
			d.WriteString(line + "\n")
			found[base] = true
		}
	}
	for w := range words {
		if !found[w] {
			return "", "", fmt.Errorf("word %q is not in the pocketsphinx dictionary", w)
		}
	}
	sum := sha256.Sum256([]byte(g + d.String()))
	tag := hex.EncodeToString(sum[:6])
	gram = filepath.Join(cache, "park-"+tag+".gram")
	dict = filepath.Join(cache, "park-"+tag+".dict")
	if err := os.WriteFile(gram, []byte(g), 0o644); err != nil {
		return "", "", err
	}
	return gram, dict, os.WriteFile(dict, []byte(d.String()), 0o644)
}

// grammarRule is the template's words as a JSGF rule: "{label} call on
// {slot}" is "<label> call on <slot>+" (the slot may be said more than
// once). Punctuation is dropped; words are lower case.
func grammarRule(tmpl string) (string, error) {
	var out []string
	for _, w := range strings.Fields(tmpl) {
		switch bare := strings.Trim(strings.ToLower(w), ",.;:!?"); bare {
		case "{label}":
			out = append(out, "<label>")
		case "{slot}":
			out = append(out, "<slot>+")
		default:
			if strings.ContainsAny(bare, "{}") {
				return "", fmt.Errorf("template %q: only {label} and {slot} are measured", tmpl)
			}
			out = append(out, bare)
		}
	}
	if !slices.Contains(out, "<label>") || !slices.Contains(out, "<slot>+") {
		return "", fmt.Errorf("template %q: needs {label} and {slot}", tmpl)
	}
	return strings.Join(out, " "), nil
}

// spokenWords is what a render of tmpl says, word by word, the slot's
// digits repeat times: the reference for the word error rate.
func spokenWords(tmpl, label, slot string, repeat int) []string {
	var out []string
	for _, w := range strings.Fields(tmpl) {
		switch strings.Trim(strings.ToLower(w), ",.;:!?") {
		case "{label}":
			out = append(out, strings.Fields(strings.ToLower(announce.NormalizeText(label)))...)
		case "{slot}":
			for range repeat {
				out = append(out, strings.Fields(announce.SpeakNumber(slot))...)
			}
		default:
			out = append(out, strings.Fields(strings.ToLower(announce.NormalizeText(strings.Trim(w, ",.;:!?"))))...)
		}
	}
	return out
}

// recognise runs both recognisers on every item, from the cache where it
// can. Items go to pocketsphinx_batch in chunks, so the language model
// (tens of MB) is loaded once per chunk rather than once per render.
// gram "" runs the open vocabulary only.
func recognise(items []*item, jobs int, gram, dict string) error {
	type task struct {
		its  []*item
		gram bool
	}
	var tasks []task
	kinds := []bool{false, true}
	if gram == "" {
		kinds = kinds[:1]
	}
	for _, g := range kinds {
		var todo []*item
		for _, it := range items {
			if b, err := os.ReadFile(hypPath(it, g, gram)); err == nil {
				it.setHyp(g, string(b))
				continue
			}
			todo = append(todo, it)
		}
		// One chunk holds items of one recogniser setup (wideband or
		// narrowband), at most chunk of them.
		const chunk = 16
		byTag := map[string][]*item{}
		var tags []string
		for _, it := range todo {
			t := it.nb.tag(it)
			if byTag[t] == nil {
				tags = append(tags, t)
			}
			byTag[t] = append(byTag[t], it)
		}
		for _, t := range tags {
			its := byTag[t]
			for len(its) > 0 {
				n := min(chunk, len(its))
				tasks = append(tasks, task{its[:n], g})
				its = its[n:]
			}
		}
	}
	total := 0
	for _, t := range tasks {
		total += len(t.its)
	}
	ch := make(chan task)
	var firstErr error
	var mu sync.Mutex
	var done atomic.Int64
	var wg sync.WaitGroup
	for range max(jobs, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range ch {
				var args []string
				if t.gram {
					args = []string{"-jsgf", gram, "-dict", dict}
				} else {
					args = []string{"-lm", filepath.Join(modelDir, "en-us.lm.bin"), "-dict", filepath.Join(modelDir, "cmudict-en-us.dict")}
				}
				hmm, wavs, extra, err := t.its[0].nb.setup(t.its)
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					continue
				}
				hyps, err := sphinxBatch(wavs, append(append([]string{"-hmm", hmm}, extra...), args...))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil {
					continue
				}
				for i, it := range t.its {
					it.setHyp(t.gram, hyps[i])
					path := hypPath(it, t.gram, gram)
					tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
					if err := os.WriteFile(tmp, []byte(hyps[i]), 0o644); err == nil {
						os.Rename(tmp, path)
					}
				}
				if n := done.Add(int64(len(t.its))); n/100 != (n-int64(len(t.its)))/100 {
					fmt.Fprintf(os.Stderr, "speechbench: %d/%d recognised\n", n, total)
				}
			}
		}()
	}
	for _, t := range tasks {
		ch <- t
	}
	close(ch)
	wg.Wait()
	return firstErr
}

// hypPath is where a recognition result is cached: beside the WAV, named
// by the recogniser (open, or the grammar's content tag) and the setup.
func hypPath(it *item, gram bool, gramFile string) string {
	s := ".open"
	if gram {
		s = "." + strings.TrimSuffix(filepath.Base(gramFile), ".gram")
	}
	return strings.TrimSuffix(it.wav, ".wav") + s + "." + it.nb.tag(it) + ".txt"
}

// perSetup gives one item per narrowband setup for a G.711 render, the
// item itself otherwise.
func perSetup(it *item, nbs []narrowband) []*item {
	if it.wav8 == "" {
		return []*item{it}
	}
	var out []*item
	for _, nb := range nbs {
		c := *it
		c.nb = nb
		out = append(out, &c)
	}
	return out
}

func (it *item) setHyp(gram bool, h string) {
	if gram {
		it.gram = h
	} else {
		it.open = h
	}
}

// sphinxBatch recognises each WAV (16-bit mono, 44-byte header) as one
// utterance and returns the hypotheses in order.
func sphinxBatch(wavs []string, args []string) ([]string, error) {
	dir, err := os.MkdirTemp("", "speechbench-batch")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var ctl strings.Builder
	for i, w := range wavs {
		abs, err := filepath.Abs(w)
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("u%04d", i)
		if err := os.Symlink(abs, filepath.Join(dir, id+".wav")); err != nil {
			return nil, err
		}
		ctl.WriteString(id + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "ctl"), []byte(ctl.String()), 0o644); err != nil {
		return nil, err
	}
	hypPath := filepath.Join(dir, "hyp")
	args = append([]string{"-ctl", filepath.Join(dir, "ctl"), "-cepdir", dir, "-cepext", ".wav", "-adcin", "yes", "-adchdr", "44",
		"-hyp", hypPath, "-logfn", filepath.Join(dir, "log")}, args...)
	cmd := exec.Command("pocketsphinx_batch", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return nil, fmt.Errorf("pocketsphinx_batch on %s…: %v: %s%s", wavs[0], err, tail(stderr.Bytes()), tail(log))
	}
	b, err := os.ReadFile(hypPath)
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.LastIndex(line, "(")
		if i < 0 {
			continue
		}
		id, _, _ := strings.Cut(line[i+1:], " ")
		got[strings.TrimSuffix(id, ")")] = strings.Join(strings.Fields(line[:i]), " ")
	}
	out := make([]string, len(wavs))
	for i := range wavs {
		h, ok := got[fmt.Sprintf("u%04d", i)]
		if !ok {
			return nil, fmt.Errorf("pocketsphinx_batch: no hypothesis for %s", wavs[i])
		}
		out[i] = h
	}
	return out, nil
}

func tail(b []byte) string {
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return string(b)
}

// tokens maps words to what a listener hears: digits and their
// homophones become the digit, everything else stays the word.
func tokens(words []string) []string {
	out := make([]string, 0, len(words))
	for _, w := range words {
		w = strings.ToLower(w)
		if i := strings.IndexByte(w, '('); i > 0 { // pronunciation variant "to(2)"
			w = w[:i]
		}
		if d, ok := homophones[w]; ok {
			w = d
		}
		out = append(out, w)
	}
	return out
}

var homophones = map[string]string{
	"zero": "0", "oh": "0", "o": "0", "owe": "0",
	"one": "1", "won": "1",
	"two": "2", "to": "2", "too": "2",
	"three": "3",
	"four":  "4", "for": "4", "fore": "4",
	"five": "5", "six": "6", "seven": "7",
	"eight": "8", "ate": "8",
	"nine": "9",
}

func contains(hay, needle []string) bool {
	for i := 0; i+len(needle) <= len(hay); i++ {
		if slices.Equal(hay[i:i+len(needle)], needle) {
			return true
		}
	}
	return false
}

func slotTokens(slot string) []string {
	var out []string
	for _, c := range slot {
		out = append(out, string(c))
	}
	return out
}

// wordErrors is the word-level Levenshtein distance.
func wordErrors(ref, hyp []string) int {
	prev := make([]int, len(hyp)+1)
	cur := make([]int, len(hyp)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ref); i++ {
		cur[0] = i
		for j := 1; j <= len(hyp); j++ {
			sub := prev[j-1]
			if ref[i-1] != hyp[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(hyp)]
}

// Score is one render's result.
type Score struct {
	Label, Slot  bool
	Errors, Refs int
	GramRight    bool // the grammar named the right slot (and no other)
	GramWrong    bool // the grammar named a wrong slot
}

// ScoreItem scores hypotheses against what was said.
func ScoreItem(label, slot string, spoken []string, open, gram string) Score {
	hyp := tokens(strings.Fields(open))
	ref := tokens(spoken)
	s := Score{
		Label:  contains(hyp, tokens(strings.Fields(strings.ToLower(label)))),
		Slot:   contains(hyp, slotTokens(slot)),
		Errors: wordErrors(ref, hyp),
		Refs:   len(ref),
	}
	// The grammar's answer: the slots it ends with ("... call on 7 0 4 7
	// 0 4"), three digits each.
	g := tokens(strings.Fields(gram))
	i := len(g) - 1
	for i >= 0 && len(g[i]) == 1 && g[i] >= "0" && g[i] <= "9" {
		i--
	}
	if i < len(g)-1 {
		digits := g[i+1:]
		named := 0
		for k := 0; k+3 <= len(digits); k += 3 {
			named++
			if !slices.Equal(digits[k:k+3], slotTokens(slot)) {
				s.GramWrong = true
			}
		}
		s.GramRight = named > 0 && !s.GramWrong
	}
	return s
}

func report(items []*item, verbose bool) string {
	type key struct {
		variant, voice string
		codec          string
	}
	type agg struct {
		n, label, slot, both, errs, refs, gramRight, gramWrong int
	}
	var order []key
	rows := map[key]*agg{}
	var b strings.Builder
	for _, it := range items {
		c := string(it.codec)
		if it.wav8 != "" {
			c += " (" + it.nb.String() + ")"
		}
		k := key{it.variant, it.voice, c}
		a := rows[k]
		if a == nil {
			a = &agg{}
			rows[k] = a
			order = append(order, k)
		}
		s := ScoreItem(it.label, it.slot, it.spoken, it.open, it.gram)
		a.n++
		a.errs += s.Errors
		a.refs += s.Refs
		if s.Label {
			a.label++
		}
		if s.Slot {
			a.slot++
		}
		if s.Label && s.Slot {
			a.both++
		}
		if s.GramRight {
			a.gramRight++
		}
		if s.GramWrong {
			a.gramWrong++
		}
		if verbose {
			fmt.Fprintf(os.Stderr, "%s %s %s %s %s: %q | grammar %q (label %v slot %v)\n", it.variant, it.voice, it.codec, it.label, it.slot, it.open, it.gram, s.Label, s.Slot)
		}
	}
	pct := func(n, d int) string { return fmt.Sprintf("%.0f %%", 100*float64(n)/float64(max(d, 1))) }
	fmt.Fprintf(&b, "| paging | voice | codec | renders | label and slot | label | slot | WER | grammar: right slot | grammar: wrong slot |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range order {
		a := rows[k]
		fmt.Fprintf(&b, "| %s | %s | %s | %d | **%s** | %s | %s | %s | %s | %d |\n", k.variant, k.voice, k.codec, a.n,
			pct(a.both, a.n), pct(a.label, a.n), pct(a.slot, a.n), pct(a.errs, a.refs), pct(a.gramRight, a.n), a.gramWrong)
	}
	return b.String()
}

// espeak speaks with eSpeak NG (Debian espeak-ng), US English.
type espeak struct{}

func (espeak) Synthesize(ctx context.Context, text string) ([]int16, error) {
	out, err := exec.CommandContext(ctx, "espeak-ng", "-v", "en-us", "--stdout", text).Output()
	if err != nil {
		return nil, fmt.Errorf("espeak-ng: %w", err)
	}
	return wav.Load16kMono(bytes.NewReader(out))
}

// narrowband is how G.711 renders (8 kHz) reach the recogniser, whose
// en-us acoustic model was trained on 16 kHz speech with a filterbank up
// to 6800 Hz:
//
//   - "up": upsampled to 16 kHz, as a wideband phone plays a narrowband
//     call, and fed to the model unchanged (its filters above 4 kHz see
//     nothing);
//   - "8k:F": at its own 8 kHz, with the model's filterbank squeezed to
//     130–F Hz (-samprate 8000 -nfft 256 -upperf F), CMU's advice for
//     telephone speech when no 8 kHz model is at hand.
type narrowband struct {
	mode   string  // "up" or "8k"
	upperf int     // 8k: the filterbank's top, Hz
	hmm8   string  // 8k: the model copy with that filterbank
	foldDB float64 // fold: how far under the speech its image is, dB
	cache  string  // fold: where the folded WAVs go
}

func parseNarrowband(spec, cache string) (narrowband, error) {
	if spec == "up" {
		return narrowband{mode: "up"}, nil
	}
	if f, ok := strings.CutPrefix(spec, "fold:"); ok {
		db, err := strconv.ParseFloat(f, 64)
		if err != nil || db < 0 || db > 60 {
			return narrowband{}, fmt.Errorf("-nb %q: want fold:D with D the image's attenuation, 0-60 dB", spec)
		}
		return narrowband{mode: "fold", foldDB: db, cache: cache}, nil
	}
	f, ok := strings.CutPrefix(spec, "8k:")
	n, err := strconv.Atoi(f)
	if !ok || err != nil || n < 1000 || n > 4000 {
		return narrowband{}, fmt.Errorf("-nb %q: want up or 8k:F with F the filterbank's top, 1000-4000 Hz", spec)
	}
	nb := narrowband{mode: "8k", upperf: n, hmm8: filepath.Join(cache, fmt.Sprintf("en-us-8k-%d", n))}
	return nb, model8k(filepath.Join(modelDir, "en-us"), nb.hmm8, n)
}

// model8k makes dir a copy of the acoustic model hmm (symbolic links)
// whose feat.params says upperf: pocketsphinx takes the model's
// feat.params over the command line.
func model8k(hmm, dir string, upperf int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(hmm)
	if err != nil {
		return err
	}
	for _, e := range ents {
		src, dst := filepath.Join(hmm, e.Name()), filepath.Join(dir, e.Name())
		if e.Name() == "feat.params" {
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			var out []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "-upperf ") {
					l = fmt.Sprintf("-upperf %d", upperf)
				}
				out = append(out, l)
			}
			if err := os.WriteFile(dst, []byte(strings.Join(out, "\n")), 0o644); err != nil {
				return err
			}
			continue
		}
		os.Remove(dst)
		if err := os.Symlink(src, dst); err != nil {
			return err
		}
	}
	return nil
}

// tag names the recogniser setup an item is heard with (in cache names).
func (nb narrowband) tag(it *item) string {
	switch {
	case it.wav8 == "":
		return "wb"
	case nb.mode == "8k":
		return fmt.Sprintf("nb8k%d", nb.upperf)
	case nb.mode == "fold":
		return fmt.Sprintf("nbfold%g", nb.foldDB)
	}
	return "nbup"
}

// setup gives the model, the files and the extra options for items that
// share one tag.
func (nb narrowband) setup(its []*item) (hmm string, wavs, extra []string, err error) {
	hmm = filepath.Join(modelDir, "en-us")
	eight := nb.mode == "8k" && its[0].wav8 != ""
	if eight {
		hmm, extra = nb.hmm8, []string{"-samprate", "8000", "-nfft", "256"}
	}
	for _, it := range its {
		switch {
		case eight:
			wavs = append(wavs, it.wav8)
		case nb.mode == "fold" && it.wav8 != "":
			w, err := nb.folded(it.wav8)
			if err != nil {
				return "", nil, nil, err
			}
			wavs = append(wavs, w)
		default:
			wavs = append(wavs, it.wav)
		}
	}
	return hmm, wavs, extra, nil
}

// folded writes the 8 kHz WAV at 16 kHz with its spectral image (0-4 kHz
// mirrored into 4-8 kHz, as upsampling without an anti-imaging filter
// leaves it) foldDB under the speech: the model's filters above 4 kHz
// see speech-shaped energy that comes and goes with the speech, as in
// its training, instead of a floor.
func (nb narrowband) folded(wav8 string) (string, error) {
	f, err := os.Open(wav8)
	if err != nil {
		return "", err
	}
	_, pcm, err := wav.ReadAll(f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("%s: %w", wav8, err)
	}
	up := resample.Upsample8to16(nil, pcm)
	g := math.Pow(10, -nb.foldDB/20)
	out := make([]int16, len(up))
	for i, u := range up {
		z := 0.0 // zero-stuffed: the image at full level
		if i%2 == 0 {
			z = 2 * float64(pcm[i/2])
		}
		v := float64(u) + g*(z-float64(u))
		out[i] = int16(max(-32768, min(32767, math.Round(v))))
	}
	return writeWAV(nb.cache, 16000, out)
}

// String names the setup as -nb does ("" for a wideband render).
func (nb narrowband) String() string {
	switch nb.mode {
	case "8k":
		return fmt.Sprintf("8k:%d", nb.upperf)
	case "fold":
		return fmt.Sprintf("fold:%g", nb.foldDB)
	case "up":
		return "up"
	}
	return "wideband"
}
