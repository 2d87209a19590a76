package journal

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkPutParallel is 20 calls changing at once (a burst of parks):
// each Put returns once its record is on disk. With group commit the
// writers share flushes; ns/op is per Put.
func BenchmarkPutParallel(b *testing.B) {
	j, _, _, err := Open(filepath.Join(b.TempDir(), "calls.journal"))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	var n atomic.Int64
	b.SetParallelism(10) // 20 writers on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprintf("call-%d", n.Add(1))
		i := 0
		for pb.Next() {
			i++
			if err := j.Put(key, rec{Slot: key, N: i}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
