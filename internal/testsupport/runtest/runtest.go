// Package runtest runs a part's Run(ctx) loop for the length of a test:
// the test owns the goroutine, and stopping it (by hand, or at the test's
// end) cancels the context and checks that Run returns, without error and
// in time. WaitFor polls for a state a part brings about. Only tests
// import it.
package runtest

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// StopTimeout bounds how long Stop waits for Run to return after its
// context is cancelled: a hang detector, generous, since the machine may
// be busy and a stop flushes files to a disk that may be slow.
const StopTimeout = 20 * time.Second

// Runner is a Run loop owned by a test.
type Runner struct {
	t      testing.TB
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	exited chan struct{}
	err    error // set before exited closes
	once   sync.Once
}

// Start runs run in a goroutine until Stop or the test's end. name
// prefixes Stop's failures.
func Start(t testing.TB, name string, run func(context.Context) error) *Runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{t: t, name: name, ctx: ctx, cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(r.exited)
		r.err = run(ctx)
	}()
	t.Cleanup(r.Stop)
	return r
}

// Context is the context run was given; it ends when Stop is called.
func (r *Runner) Context() context.Context { return r.ctx }

// Exited is closed once run has returned.
func (r *Runner) Exited() <-chan struct{} { return r.exited }

// Err is what run returned; call it only after Exited is closed.
func (r *Runner) Err() error { return r.err }

// Stop cancels run's context and waits up to StopTimeout for it to
// return, failing the test if it returns an error or does not return in
// time. Only the first call does anything.
func (r *Runner) Stop() {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.exited:
			if r.err != nil {
				r.t.Errorf("%s: %v", r.name, r.err)
			}
		case <-time.After(StopTimeout):
			// Say where it hangs: every goroutine's stack.
			buf := make([]byte, 4<<20)
			buf = buf[:runtime.Stack(buf, true)]
			r.t.Errorf("%s did not return within %v of cancel; goroutines:\n%s", r.name, StopTimeout, buf)
		}
	})
}

// WaitFor polls cond every 5 ms until it holds, failing the test if it
// does not within timeout; what names the awaited state in the failure.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
