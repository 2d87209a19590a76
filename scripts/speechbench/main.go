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
// G.711 renders (8 kHz) are resampled to 16 kHz for the 16 kHz model, as
// a wideband listener would hear a narrowband phone. Recognition results
// are cached by the render's SHA-256 (-cache), so a rerun only recognises
// what changed; recognisers run in parallel (-j).
//
// It is a measurement, not a test: `make bench` runs it and prints the
// Markdown table the README quotes. Digit homophones count as the digit
// ("for" is 4, "to" is 2, "o" is 0): a listener hears sounds, the
// recogniser picks a spelling.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
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
		voices   = flag.String("voices", "slt,kal16,awb,rms,prompts", "voices, comma separated; prompts+V: voice prompts with V for the words no recording covers")
		codecs   = flag.String("codecs", "g722,pcmu,pcma,opus", "codecs, comma separated")
		variants = flag.String("paging", "plain;default", "paging settings, ';' separated: plain, default, or default with changes, e.g. default,gap=200ms,repeat=1 (keys: rate gap repeat gain hp presence)")
		nLabels  = flag.Int("labels", len(Labels), "how many labels (the first N)")
		slots    = flag.String("slots", "701-710", "slots, a range or a comma list")
		jobs     = flag.Int("j", runtime.NumCPU(), "recognisers run in parallel")
		cacheDir = flag.String("cache", defaultCache(), "cache of renders and recognition results")
		out      = flag.String("o", "", "also write the Markdown table to this file")
		verbose  = flag.Bool("v", false, "print every render's hypotheses")
		peek     = flag.Bool("cached", false, "report only what is already recognised (a look at a run in progress)")
		pairs    = flag.Bool("pairs", false, "a quick run: each label with one slot (label i, slot i mod slots) instead of every slot")
	)
	flag.Parse()
	if err := run(config{
		voices: split(*voices, ","), codecs: split(*codecs, ","), variants: split(*variants, ";"),
		labels: Labels[:min(*nLabels, len(Labels))], slotSpec: *slots, jobs: *jobs, cache: *cacheDir, out: *out, verbose: *verbose, pairs: *pairs, cachedOnly: *peek,
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
	cache, out                       string
	verbose, pairs, cachedOnly       bool
}

// item is one render to recognise.
type item struct {
	variant, voice string
	codec          codec.Name
	label, slot    string
	spoken         []string // reference words
	repeat         int      // times the slot is said
	wav            string   // path in the cache
	open, gram     string   // hypotheses
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
		default:
			return p, fmt.Errorf("paging %q: unknown key %q", spec, k)
		}
	}
	return p, p.Validate()
}

func run(cfg config) error {
	for _, tool := range []string{"pocketsphinx_continuous"} {
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
	gram, dict, err := writeGrammar(cfg.cache, cfg.labels, slots)
	if err != nil {
		return err
	}
	var items []*item
	start := time.Now()
	binHash, err := executableHash()
	if err != nil {
		return err
	}
	for _, vs := range cfg.variants {
		p, err := ParsePaging(vs)
		if err != nil {
			return err
		}
		for _, voice := range cfg.voices {
			// "prompts+kal16": voice prompts with kal16 for uncovered words.
			v, fallback, _ := strings.Cut(voice, "+")
			rc := announce.Config{Voice: v, PromptFallback: fallback, Chime: announce.ChimeNone}
			if v == "espeak" {
				// A candidate engine, run as a separate process (eSpeak NG is
				// GPL-3.0: never linked in).
				rc.NewSpeaker = func(string) (announce.Speaker, error) { return espeak{}, nil }
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
						it, err := render(r, cfg.cache, binHash, vs, voice, codec.Name(cn), label, slot, p)
						if err != nil {
							return err
						}
						items = append(items, it)
					}
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "speechbench: %d renders in %v; recognising (%d at a time, cache %s)\n", len(items), time.Since(start).Round(time.Millisecond), cfg.jobs, cfg.cache)
	if cfg.cachedOnly {
		items = slices.DeleteFunc(items, func(it *item) bool {
			for _, p := range []string{".open.txt", "." + strings.TrimSuffix(filepath.Base(gram), ".gram") + ".txt"} {
				if _, err := os.Stat(strings.TrimSuffix(it.wav, ".wav") + p); err != nil {
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
	fmt.Print(table)
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(table), 0o644)
	}
	return nil
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

func render(r *announce.Renderer, cache, binHash, variant, voice string, c codec.Name, label, slot string, p announce.Paging) (*item, error) {
	repeat := 1
	if !p.Off && p.NumberRepeat > 1 {
		repeat = p.NumberRepeat
	}
	spoken := strings.Fields(strings.ToLower(announce.NormalizeText(label + " call on")))
	for range repeat {
		spoken = append(spoken, strings.Fields(announce.SpeakNumber(slot))...)
	}
	it := &item{variant: variant, voice: voice, codec: c, label: label, slot: slot, spoken: spoken, repeat: repeat}
	isum := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%+v|%s|%s|%s|%s", binHash, variant, p, voice, c, label, slot)))
	index := filepath.Join(cache, "index", hex.EncodeToString(isum[:12]))
	if b, err := os.ReadFile(index); err == nil {
		it.wav = string(b)
		return it, nil
	}
	text, err := announce.Phrase(announce.DefaultTemplate, announce.Fields{Label: label, Slot: slot})
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
	if rate != 16000 {
		if pcm, err = resample.Resample(pcm, rate, 16000); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := wav.Write(&buf, 16000, 1, pcm); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(cache, hex.EncodeToString(sum[:12])+".wav")
	if _, err := os.Stat(path); err != nil {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	it.wav = path
	if err := os.MkdirAll(filepath.Dir(index), 0o755); err != nil {
		return nil, err
	}
	return it, os.WriteFile(index, []byte(path), 0o644)
}

// writeGrammar writes the closed grammar and a dictionary of its words.
func writeGrammar(cache string, labels, slots []string) (gram, dict string, err error) {
	var ls, ss []string
	words := map[string]bool{"call": true, "on": true}
	for _, l := range labels {
		l = strings.ToLower(l)
		ls = append(ls, l)
		for _, w := range strings.Fields(l) {
			words[w] = true
		}
	}
	for _, s := range slots {
		sp := announce.SpeakNumber(s)
		ss = append(ss, sp)
		for _, w := range strings.Fields(sp) {
			words[w] = true
		}
	}
	g := fmt.Sprintf("#JSGF V1.0;\ngrammar park;\npublic <park> = <label> call on <slot>+;\n<label> = %s;\n<slot> = %s;\n",
		strings.Join(ls, " | "), strings.Join(ss, " | "))
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

// recognise runs both recognisers on every item, from the cache where it
// can.
func recognise(items []*item, jobs int, gram, dict string) error {
	type task struct {
		it   *item
		gram bool
	}
	tasks := make(chan task)
	var firstErr error
	var mu sync.Mutex
	var done atomic.Int64
	total := int64(2 * len(items))
	var wg sync.WaitGroup
	for range max(jobs, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range tasks {
				var args []string
				suffix := ".open.txt"
				if t.gram {
					args = []string{"-jsgf", gram, "-dict", dict}
					suffix = "." + strings.TrimSuffix(filepath.Base(gram), ".gram") + ".txt"
				} else {
					args = []string{"-lm", filepath.Join(modelDir, "en-us.lm.bin"), "-dict", filepath.Join(modelDir, "cmudict-en-us.dict")}
				}
				hyp, err := cached(strings.TrimSuffix(t.it.wav, ".wav")+suffix, func() (string, error) {
					return sphinx(t.it.wav, args)
				})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if t.gram {
					t.it.gram = hyp
				} else {
					t.it.open = hyp
				}
				mu.Unlock()
				if n := done.Add(1); n%200 == 0 {
					fmt.Fprintf(os.Stderr, "speechbench: %d/%d recognised\n", n, total)
				}
			}
		}()
	}
	for _, it := range items {
		tasks <- task{it, false}
		tasks <- task{it, true}
	}
	close(tasks)
	wg.Wait()
	return firstErr
}

func cached(path string, f func() (string, error)) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return string(b), nil
	}
	s, err := f()
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return "", err
	}
	return s, os.Rename(tmp, path)
}

func sphinx(wavPath string, args []string) (string, error) {
	args = append([]string{"-infile", wavPath, "-hmm", filepath.Join(modelDir, "en-us"), "-logfn", "/dev/null"}, args...)
	cmd := exec.Command("pocketsphinx_continuous", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pocketsphinx on %s: %v: %s", wavPath, err, tail(stderr.Bytes()))
	}
	// One line per utterance the recogniser's voice detector found.
	return strings.Join(strings.Fields(stdout.String()), " "), nil
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
	// The grammar's answer: the slots after "call on", three digits each.
	g := tokens(strings.Fields(gram))
	if i := slices.Index(g, "on"); i >= 0 {
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
		codec          codec.Name
	}
	type agg struct {
		n, label, slot, both, errs, refs, gramRight, gramWrong int
	}
	var order []key
	rows := map[key]*agg{}
	var b strings.Builder
	for _, it := range items {
		k := key{it.variant, it.voice, it.codec}
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
