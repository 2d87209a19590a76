// Package journal is a small crash-safe key/value log in the state
// directory: every Put or Delete is one line appended to the file and
// flushed to disk (fdatasync) before it returns, so the file is current
// at every transition and nothing depends on a clean exit. The file is
// compacted (rewritten with the live records only, then renamed over the
// old one) when dead lines outnumber live ones.
//
// A line is "<crc32c of the JSON, 8 hex digits> <JSON>\n" with the JSON
// {"k":key,"v":value} or {"k":key,"del":true}. A line that fails its
// check (a torn write after a crash, garbage, a hand edit) is reported as
// a Problem naming the entry and why, and skipped: the good lines around
// it still count. Reading never fails because of the file's content.
package journal

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// MaxLine is the longest line read; longer ones are reported and skipped.
const MaxLine = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one live key and its value (JSON).
type Record struct {
	Key   string
	Value json.RawMessage
}

// Problem is a line that was skipped on reading.
type Problem struct {
	Entry  int   // 1-based line number
	Offset int64 // byte offset of the line
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("entry %d (byte %d): %s", p.Entry, p.Offset, p.Reason)
}

type line struct {
	K   string          `json:"k"`
	V   json.RawMessage `json:"v,omitempty"`
	Del bool            `json:"del,omitempty"`
}

// Parse reads a journal's content: the live records in the order they
// were last written, and the lines it skipped.
func Parse(r io.Reader) ([]Record, []Problem) {
	recs, probs, _ := parse(r)
	return recs, probs
}

// parse is Parse that also counts the good lines read (live or not).
func parse(r io.Reader) ([]Record, []Problem, int) {
	type entry struct {
		v   json.RawMessage
		pos int
	}
	live := map[string]entry{}
	var probs []Problem
	lines := 0
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	for n := 1; ; n++ {
		raw, size, err := readLine(br)
		start := off
		off += size
		if errors.Is(err, errLong) {
			probs = append(probs, Problem{n, start, fmt.Sprintf("longer than %d bytes", MaxLine)})
			continue
		}
		if len(raw) == 0 {
			if err != nil && err != io.EOF {
				probs = append(probs, Problem{n, start, "read: " + err.Error()})
			}
			break
		}
		if raw[len(raw)-1] != '\n' {
			probs = append(probs, Problem{n, start, fmt.Sprintf("truncated (%d bytes without an end of line)", len(raw))})
			break
		}
		l, why := decodeLine(raw[:len(raw)-1])
		if why != "" {
			probs = append(probs, Problem{n, start, why})
			continue
		}
		lines++
		if l.Del {
			delete(live, l.K)
		} else {
			live[l.K] = entry{l.V, n}
		}
	}
	out := make([]Record, 0, len(live))
	pos := make(map[string]int, len(live))
	for k, e := range live {
		out = append(out, Record{k, e.v})
		pos[k] = e.pos
	}
	sort.Slice(out, func(i, j int) bool { return pos[out[i].Key] < pos[out[j].Key] })
	return out, probs, lines
}

var errLong = errors.New("line too long")

// readLine returns the next line with its '\n' (none at the end of the
// file) and its size; a line longer than MaxLine is consumed, not kept,
// and reported with errLong.
func readLine(br *bufio.Reader) ([]byte, int64, error) {
	var buf []byte
	var n int64
	long := false
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if !long && len(buf)+len(chunk) > MaxLine {
			long, buf = true, nil
		}
		if !long {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if long {
			if err == io.EOF {
				err = nil
			}
			return nil, n, errors.Join(errLong, err)
		}
		return buf, n, err
	}
}

func decodeLine(b []byte) (line, string) {
	var l line
	if len(b) < 10 || b[8] != ' ' {
		return l, "not a journal line"
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], b[:8]); err != nil {
		return l, "checksum is not hex"
	}
	body := b[9:]
	want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	if got := crc32.Checksum(body, castagnoli); got != want {
		return l, fmt.Sprintf("checksum mismatch (%08x, want %08x)", got, want)
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return l, "bad JSON: " + err.Error()
	}
	if l.K == "" {
		return l, "no key"
	}
	if !l.Del && len(l.V) == 0 {
		return l, fmt.Sprintf("key %q has no value", l.K)
	}
	return l, ""
}

func encodeLine(dst []byte, l line) ([]byte, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return dst, err
	}
	dst = fmt.Appendf(dst, "%08x ", crc32.Checksum(body, castagnoli))
	dst = append(dst, body...)
	return append(dst, '\n'), nil
}

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	path string

	mu      sync.Mutex
	f       *os.File
	live    map[string]json.RawMessage
	dead    int // lines in the file that no longer count
	buf     []byte
	written uint64 // writes appended so far

	// Group commit: a writer appends under mu, then waits under syncMu
	// until one fdatasync covers its write. Writers that arrive while a
	// sync runs share the next one, so a burst of parks on a slow disk
	// costs two syncs, not one each in turn.
	syncMu sync.Mutex
	synced uint64 // writes known to be on disk (syncMu)
	syncs  uint64 // fdatasync calls (syncMu; tests)
}

// Open reads the journal at path (a missing file is an empty journal),
// compacts it, and opens it for writing. It returns the live records and
// the lines it skipped; an error means the file cannot be written.
func Open(path string) (*Journal, []Record, []Problem, error) {
	var recs []Record
	var probs []Problem
	lines := 0
	f, err := os.Open(path)
	switch {
	case err == nil:
		recs, probs, lines = parse(f)
		f.Close()
	case !errors.Is(err, os.ErrNotExist):
		probs = append(probs, Problem{0, 0, "not readable: " + err.Error()})
	}
	j := &Journal{path: path, live: map[string]json.RawMessage{}}
	for _, r := range recs {
		j.live[r.Key] = r.Value
	}
	if err == nil && len(probs) == 0 {
		// A clean file is appended to as it is (a restart that resumes
		// 1,000 calls need not wait for a rewrite and its two flushes
		// first); it is compacted when it has as many dead lines as
		// maybeCompact allows.
		j.dead = lines - len(recs)
		if nf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			j.f = nf
			if err := j.maybeCompact(); err != nil {
				j.f.Close()
				return nil, nil, probs, err
			}
			return j, recs, probs, nil
		}
	}
	if err := j.rewrite(recs); err != nil {
		return nil, nil, probs, err
	}
	return j, recs, probs, nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Put stores v (marshalled as JSON) under key, on disk before it returns.
func (j *Journal) Put(key string, v any) error {
	wait, err := j.Stage(key, v)
	if err != nil {
		return err
	}
	return wait()
}

// Stage appends v under key and returns at once, with a wait that returns
// once the record is on disk. Records are in the file in the order they
// were staged: a caller that orders its changes under its own lock
// stages under it and waits after, sharing the disk's syncs with others.
func (j *Journal) Stage(key string, v any) (wait func() error, err error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("journal: %s: %w", key, err)
	}
	j.mu.Lock()
	if err := j.append(line{K: key, V: raw}); err != nil {
		j.mu.Unlock()
		return nil, err
	}
	if _, had := j.live[key]; had {
		j.dead++
	}
	j.live[key] = raw
	return j.staged()
}

// PutAll stores several values with one write and one flush (a process
// saving every record as it stops).
func (j *Journal) PutAll(kvs map[string]any) error {
	raws := make(map[string]json.RawMessage, len(kvs))
	for k, v := range kvs {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("journal: %s: %w", k, err)
		}
		raws[k] = raw
	}
	j.mu.Lock()
	if j.f == nil {
		j.mu.Unlock()
		return errors.New("journal: closed")
	}
	var buf []byte
	for k, raw := range raws {
		var err error
		if buf, err = encodeLine(buf, line{K: k, V: raw}); err != nil {
			j.mu.Unlock()
			return fmt.Errorf("journal: %s: %w", k, err)
		}
	}
	if _, err := j.f.Write(buf); err != nil {
		j.mu.Unlock()
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.written++
	for k, raw := range raws {
		if _, had := j.live[k]; had {
			j.dead++
		}
		j.live[k] = raw
	}
	return j.commit()
}

// Delete removes key (nothing is written when it is not there).
func (j *Journal) Delete(key string) error {
	wait, err := j.StageDelete(key)
	if err != nil {
		return err
	}
	return wait()
}

// StageDelete is Delete that returns before the disk has it, as Stage.
func (j *Journal) StageDelete(key string) (wait func() error, err error) {
	j.mu.Lock()
	if _, had := j.live[key]; !had {
		j.mu.Unlock()
		return func() error { return nil }, nil
	}
	if err := j.append(line{K: key, Del: true}); err != nil {
		j.mu.Unlock()
		return nil, err
	}
	delete(j.live, key)
	j.dead += 2
	return j.staged()
}

// commit ends a change made under j.mu (which it releases) and waits
// until a sync covers it.
func (j *Journal) commit() error {
	wait, err := j.staged()
	if err != nil {
		return err
	}
	return wait()
}

// staged ends a change made under j.mu (which it releases): it compacts
// the file if due (a rewrite is synced whole) and returns the wait for a
// sync that covers the change.
func (j *Journal) staged() (func() error, error) {
	if err := j.maybeCompact(); err != nil {
		j.mu.Unlock()
		return nil, err
	}
	seq := j.written
	j.mu.Unlock()
	return func() error { return j.syncTo(seq) }, nil
}

// fdatasync is unix.Fdatasync; tests slow it down.
var fdatasync = unix.Fdatasync

// syncTo returns once write seq is on disk: at most one fdatasync runs at
// a time, and each covers every write appended before it started.
func (j *Journal) syncTo(seq uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= seq {
		return nil // a sync that started after our write covered it
	}
	j.mu.Lock()
	if j.f == nil {
		j.mu.Unlock()
		return errors.New("journal: closed")
	}
	// A duplicate descriptor: a compaction may replace and close j.f
	// while the sync runs (its new file is synced whole by then).
	fd, err := unix.Dup(int(j.f.Fd()))
	target := j.written
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("journal %s: sync: %w", j.path, err)
	}
	defer unix.Close(fd)
	j.syncs++
	if err := fdatasync(fd); err != nil {
		return fmt.Errorf("journal %s: sync: %w", j.path, err)
	}
	j.synced = max(j.synced, target)
	return nil
}

// Len is the number of live records.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.live)
}

// Close closes the file; the journal stays on disk.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func (j *Journal) append(l line) error {
	if j.f == nil {
		return errors.New("journal: closed")
	}
	var err error
	j.buf, err = encodeLine(j.buf[:0], l)
	if err != nil {
		return fmt.Errorf("journal: %s: %w", l.K, err)
	}
	if _, err := j.f.Write(j.buf); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.written++
	return nil
}

func (j *Journal) maybeCompact() error {
	if j.dead < 64 || j.dead < 2*len(j.live) {
		return nil
	}
	recs := make([]Record, 0, len(j.live))
	for k, v := range j.live {
		recs = append(recs, Record{k, v})
	}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Key < recs[b].Key })
	return j.rewrite(recs)
}

// rewrite replaces the file with recs: a new file written and synced
// beside it, renamed over it, the directory synced. A crash at any point
// leaves either the old file or the new one.
func (j *Journal) rewrite(recs []Record) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var buf []byte
	for _, r := range recs {
		if buf, err = encodeLine(buf, line{K: r.Key, V: r.Value}); err != nil {
			f.Close()
			return fmt.Errorf("journal: %w", err)
		}
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	nf, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.dead = nf, 0
	return nil
}
