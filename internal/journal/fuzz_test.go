package journal

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParse: a journal left by a crash (or damaged on disk) is outside
// input. Parse must never panic, every record it returns must have passed
// its checksum, and writing those records back reads them back unchanged.
func FuzzParse(f *testing.F) {
	a, _ := encodeLine(nil, line{K: "a", V: json.RawMessage(`{"slot":"701"}`)})
	d, _ := encodeLine(nil, line{K: "a", Del: true})
	f.Add(a)
	f.Add(append(append([]byte{}, a...), d...))
	f.Add(a[:len(a)-3])
	f.Add([]byte("00000000 {}\n"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, probs := Parse(bytes.NewReader(data))
		for _, p := range probs {
			if p.Entry <= 0 || p.Offset < 0 || p.Offset > int64(len(data)) || p.Reason == "" {
				t.Fatalf("bad problem %+v", p)
			}
		}
		var buf []byte
		for _, r := range recs {
			if r.Key == "" || len(r.Value) == 0 {
				t.Fatalf("bad record %+v", r)
			}
			var err error
			if buf, err = encodeLine(buf, line{K: r.Key, V: r.Value}); err != nil {
				t.Fatalf("record %q does not encode: %v", r.Key, err)
			}
		}
		again, probs := Parse(bytes.NewReader(buf))
		if len(probs) != 0 || len(again) != len(recs) {
			t.Fatalf("round trip: %d records, want %d; problems %v", len(again), len(recs), probs)
		}
	})
}
