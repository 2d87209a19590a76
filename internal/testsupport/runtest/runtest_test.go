package runtest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeT records failures instead of failing the real test.
type fakeT struct {
	testing.TB
	errs    []string
	cleanup []func()
}

func (f *fakeT) Helper()                        {}
func (f *fakeT) Cleanup(fn func())              { f.cleanup = append(f.cleanup, fn) }
func (f *fakeT) Errorf(format string, a ...any) { f.errs = append(f.errs, format) }

func TestStop(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	for _, tc := range []struct {
		name    string
		run     func(context.Context) error
		wantErr bool
	}{
		{"returns on cancel", func(ctx context.Context) error { <-ctx.Done(); return nil }, false},
		{"returns an error", func(ctx context.Context) error { <-ctx.Done(); return errors.New("boom") }, true},
		{"ignores cancel", func(context.Context) error { <-stuck; return nil }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeT{}
			r := Start(f, tc.name, tc.run)
			select {
			case <-r.Exited():
				t.Fatal("run exited before Stop")
			case <-time.After(10 * time.Millisecond):
			}
			r.Stop()
			for _, fn := range f.cleanup {
				fn() // a second Stop does nothing
			}
			if got := len(f.errs) != 0; got != tc.wantErr || len(f.errs) > 1 {
				t.Errorf("failures %q, want failure: %v", f.errs, tc.wantErr)
			}
			if r.Context().Err() == nil {
				t.Error("context not cancelled by Stop")
			}
		})
	}
}
