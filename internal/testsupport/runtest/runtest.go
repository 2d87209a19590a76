// Package runtest runs a part's Run(ctx) loop for the length of a test:
// the test owns the goroutine, cancels it and waits for it at cleanup, and
// an error from Run fails the test. Only tests import it.
package runtest

import (
	"context"
	"sync"
	"testing"
)

// Go runs run in a goroutine until the test ends; then it cancels run's
// context and waits for it to return. A non-nil error from run is reported
// with t.Errorf, prefixed with name.
func Go(t testing.TB, name string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := run(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}
