package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type rec struct {
	Slot string `json:"slot"`
	N    int    `json:"n"`
}

func open(t *testing.T, path string) (*Journal, []Record, []Problem) {
	t.Helper()
	j, recs, probs, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, recs, probs
}

func TestPutDeleteReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.journal")
	j, recs, probs := open(t, path)
	if len(recs) != 0 || len(probs) != 0 {
		t.Fatalf("new journal: %v %v", recs, probs)
	}
	for i := range 5 {
		if err := j.Put(fmt.Sprint("k", i), rec{fmt.Sprint(701 + i), i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Put("k1", rec{"702", 100}); err != nil {
		t.Fatal(err)
	}
	if err := j.Delete("k3"); err != nil {
		t.Fatal(err)
	}
	if err := j.Delete("nothing"); err != nil {
		t.Fatal(err)
	}
	j.Close()
	_, recs, probs = open(t, path)
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	var got []string
	for _, r := range recs {
		var v rec
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s=%s/%d", r.Key, v.Slot, v.N))
	}
	want := "k0=701/0 k2=703/2 k4=705/4 k1=702/100"
	if strings.Join(got, " ") != want {
		t.Fatalf("records %q, want %q", strings.Join(got, " "), want)
	}
}

// TestCompaction: the file stays small however often records change.
func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.journal")
	j, _, _ := open(t, path)
	for i := range 2000 {
		if err := j.Put(fmt.Sprint("k", i%10), rec{"701", i}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := j.Delete(fmt.Sprint("k", (i+5)%10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 200*40 {
		t.Fatalf("journal is %d bytes after 2000 changes of 10 keys: not compacted", fi.Size())
	}
	n := j.Len()
	j.Close()
	_, recs, probs := open(t, path)
	if len(probs) != 0 || len(recs) != n {
		t.Fatalf("after compaction: %d records (want %d), problems %v", len(recs), n, probs)
	}
}

// TestDamage: torn tails, garbage and one bad line among good ones are
// reported by entry and reason; every good record survives.
func TestDamage(t *testing.T) {
	good := func(k string, n int) string {
		b, _ := encodeLine(nil, line{K: k, V: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))})
		return string(b)
	}
	a, b, c := good("a", 1), good("b", 2), good("c", 3)
	flipped := []byte(b)
	flipped[20] ^= 0x01
	cases := []struct {
		name     string
		content  string
		keys     string
		problems []string // substrings, one per problem
	}{
		{"clean", a + b + c, "a b c", nil},
		{"truncated tail", a + b + c[:len(c)/2], "a b", []string{"entry 3|truncated"}},
		{"torn checksum", a + b + c[:5], "a b", []string{"entry 3|truncated"}},
		{"one bad line among good ones", a + string(flipped) + c, "a c", []string{"entry 2|checksum mismatch"}},
		{"garbage line", a + "\x00\x01garbage here\n" + c, "a c", []string{"entry 2|not a journal line"}},
		{"all garbage", "qwertyuiopasdfghjkl\nzxcvbnm,./\n", "", []string{"entry 1|not a journal line", "entry 2|not a journal line"}},
		{"bad json", a + "00000000 {\n" + c, "a c", []string{"entry 2|checksum"}},
		{"empty", "", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "calls.journal")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			j, recs, probs := open(t, path)
			var keys []string
			for _, r := range recs {
				keys = append(keys, r.Key)
			}
			if strings.Join(keys, " ") != tc.keys {
				t.Errorf("keys %q, want %q", strings.Join(keys, " "), tc.keys)
			}
			if len(probs) != len(tc.problems) {
				t.Fatalf("problems %v, want %d", probs, len(tc.problems))
			}
			for i, p := range probs {
				for _, want := range strings.Split(tc.problems[i], "|") {
					if !strings.Contains(p.String(), want) {
						t.Errorf("problem %q does not say %q", p, want)
					}
				}
			}
			// Opening rewrote the file clean: new writes follow good lines.
			if err := j.Put("d", rec{"704", 4}); err != nil {
				t.Fatal(err)
			}
			j.Close()
			_, recs, probs = open(t, path)
			if len(probs) != 0 || len(recs) != len(keys)+1 {
				t.Fatalf("after rewrite: %d records, problems %v", len(recs), probs)
			}
		})
	}
}

func TestLongLine(t *testing.T) {
	a, _ := encodeLine(nil, line{K: "a", V: json.RawMessage(`1`)})
	content := append(bytes.Repeat([]byte("y"), MaxLine+10), '\n')
	content = append(content, a...)
	recs, probs := Parse(bytes.NewReader(content))
	if len(recs) != 1 || len(probs) != 1 || probs[0].Entry != 1 || !strings.Contains(probs[0].Reason, "longer") {
		t.Fatalf("records %v, problems %v", recs, probs)
	}
	if probs[0].Offset != 0 {
		t.Fatalf("offset %d", probs[0].Offset)
	}
}

func BenchmarkPut(b *testing.B) {
	path := filepath.Join(b.TempDir(), "calls.journal")
	j, _, _, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	v := rec{"701", 1}
	for i := 0; b.Loop(); i++ {
		if err := j.Put(fmt.Sprint("k", i%20), v); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReopenAppends: a clean journal is appended to as it is when opened
// (a restart resuming many calls does not first wait for a rewrite), a
// damaged one is rewritten without the bad lines, and the dead lines
// counted at the open still lead to a compaction.
func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.journal")
	j, _, _ := open(t, path)
	for i := range 40 { // 30 dead lines, 10 live
		if err := j.Put(fmt.Sprint("k", i%10), rec{"701", i}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ino := func() uint64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	kept := ino()
	j, recs, probs := open(t, path)
	if len(recs) != 10 || len(probs) != 0 {
		t.Fatalf("reopened: %d records, problems %v", len(recs), probs)
	}
	if ino() != kept {
		t.Fatal("a clean journal was rewritten at the open")
	}
	if err := j.Put("k0", rec{"702", 1000}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.HasPrefix(after, before) || bytes.Count(after, []byte("\n")) != 41 {
		t.Fatalf("the put was not appended to the file as it was (%d lines)", bytes.Count(after, []byte("\n")))
	}
	// 31 dead lines for 10 live: 33 more changes pass 64 and compact.
	for i := range 33 {
		if err := j.Put(fmt.Sprint("k", i%10), rec{"703", i}); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(path); bytes.Count(b, []byte("\n")) >= 41 {
		t.Fatalf("not compacted: %d lines for 10 records", bytes.Count(b, []byte("\n")))
	}
	j.Close()

	// A torn tail: reported, and the file rewritten without it (an append
	// after it would glue the next record to the torn line).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`0badc0de {"k":"k9","v":`)
	f.Close()
	j, recs, probs = open(t, path)
	if len(probs) != 1 || len(recs) != 10 {
		t.Fatalf("torn tail: %d records, problems %v", len(recs), probs)
	}
	if err := j.Put("k11", rec{"711", 11}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	_, recs, probs = open(t, path)
	if len(probs) != 0 || len(recs) != 11 {
		t.Fatalf("after the torn tail and a put: %d records, problems %v", len(recs), probs)
	}
}

// Parks that arrive together on a slow disk share syncs (group commit)
// instead of waiting for one each in turn; every change is on disk when
// its call returns, compactions included.
func TestGroupCommit(t *testing.T) {
	var inSync atomic.Int32
	var overlap atomic.Bool
	fdatasync = func(fd int) error {
		if inSync.Add(1) > 1 {
			overlap.Store(true)
		}
		defer inSync.Add(-1)
		time.Sleep(20 * time.Millisecond) // a slow disk
		return unix.Fdatasync(fd)
	}
	t.Cleanup(func() { fdatasync = unix.Fdatasync })
	path := filepath.Join(t.TempDir(), "calls.journal")
	j, _, _ := open(t, path)

	const writers, rounds = 40, 5
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for r := range rounds {
				key := fmt.Sprintf("call-%02d", w)
				if err := j.Put(key, rec{Slot: key, N: r}); err != nil {
					t.Error(err)
				}
				if w%4 == 0 && r == rounds-1 {
					if err := j.Delete(key); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	j.syncMu.Lock()
	syncs := j.syncs
	j.syncMu.Unlock()
	t.Logf("%d changes, %d syncs", writers*rounds+writers/4, syncs)
	if overlap.Load() {
		t.Error("two syncs ran at once")
	}
	// One each in turn would be 210; shared, a few per round of writers.
	if syncs > writers*rounds/4 {
		t.Errorf("%d syncs for %d changes: writers do not share them", syncs, writers*rounds+writers/4)
	}
	j.Close()
	_, recs, probs := open(t, path)
	if len(probs) != 0 {
		t.Errorf("problems: %v", probs)
	}
	if len(recs) != writers-writers/4 {
		t.Fatalf("%d records after reopening, want %d", len(recs), writers-writers/4)
	}
	for _, r := range recs {
		var v rec
		json.Unmarshal(r.Value, &v)
		if v.N != rounds-1 {
			t.Errorf("%s: n %d, want the last, %d", r.Key, v.N, rounds-1)
		}
	}
}
