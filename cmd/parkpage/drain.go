package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/park"
	parksip "github.com/parkpage/parkpage/park/sip"
)

// parkDrainer serves /api/v1/drain from the park server.
type parkDrainer struct{ p *parksip.Server }

func (d parkDrainer) Drain() (api.DrainStatus, error) { return drainStatus(d.p.Drain()), nil }
func (d parkDrainer) CancelDrain() (api.DrainStatus, error) {
	return drainStatus(d.p.CancelDrain()), nil
}
func (d parkDrainer) Draining() (api.DrainStatus, error) { return drainStatus(d.p.Draining()), nil }

func drainStatus(s park.DrainStatus) api.DrainStatus {
	st := api.DrainStatus{Draining: s.Draining, ParkedAtStart: s.Started, Parked: s.Parked, Ringing: s.Ringing, Empty: s.Draining && s.Empty()}
	if s.Draining {
		t := s.Since
		st.Since = &t
	}
	return st
}

// registerDrainMetrics adds parkpage_draining (1 while draining).
func registerDrainMetrics(set *metrics.Set, p *parksip.Server) {
	set.NewGauge("parkpage_draining", func() float64 {
		if p.Draining().Draining {
			return 1
		}
		return 0
	})
}

// cmdDrain asks the running appliance to drain its park before it is
// stopped for good, and waits until the lot is empty, showing progress.
func cmdDrain(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("drain", stderr)
	cancel := fs.Bool("cancel", false, "end the drain: parks are accepted again")
	noWait := fs.Bool("no-wait", false, "start the drain and return at once")
	timeout := fs.Duration("timeout", 0, "give up waiting after this long, exit 1 (0: wait until the lot is empty); the drain carries on")
	apiURL := fs.String("api", envOr("PARKPAGE_API", "http://127.0.0.1:8080"), "admin API base URL (env PARKPAGE_API)")
	token := fs.String("token", os.Getenv("PARKPAGE_TOKEN"), "bearer token (env PARKPAGE_TOKEN)")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fs.SetOutput(stdout)
	}
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	c := drainClient{base: strings.TrimRight(*apiURL, "/") + "/api/v1/", token: *token}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "parkpage drain: %v\n", err)
		return 1
	}
	if *cancel {
		st, err := c.do("DELETE")
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "drain ended: parks are accepted again (%s parked)\n", calls(st.Parked))
		return 0
	}
	st, err := c.do("POST")
	if err != nil {
		return fail(err)
	}
	began := time.Now()
	if st.Since != nil {
		began = *st.Since
	}
	fmt.Fprintf(stdout, "draining: new parks are refused (480), pickups still work; %s parked, each rung back to its parker\n", calls(st.Parked))
	if *noWait {
		fmt.Fprintln(stdout, "not waiting: `parkpage drain` again waits for the lot to empty, `parkpage drain --cancel` ends the drain")
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var done context.CancelFunc
		ctx, done = context.WithTimeout(ctx, *timeout)
		defer done()
	}
	last := st
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		switch {
		case !st.Draining:
			fmt.Fprintf(stderr, "parkpage drain: the drain was ended (cancelled or parkpage restarted) with %s parked\n", calls(st.Parked))
			return 1
		case st.Empty:
			fmt.Fprintf(stdout, "lot empty after %s: no calls parked; parkpage can be stopped now (new parks stay refused until it restarts or `parkpage drain --cancel`)\n",
				time.Since(began).Round(time.Second))
			return 0
		case st.Parked != last.Parked || st.Ringing != last.Ringing:
			fmt.Fprintf(stdout, "draining: %s left, %d ringing back (%s)\n", calls(st.Parked), st.Ringing, time.Since(began).Round(time.Second))
		}
		last = st
		select {
		case <-ctx.Done():
			why := "stopped waiting"
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = fmt.Sprintf("gave up after %v", *timeout)
			}
			fmt.Fprintf(stderr, "parkpage drain: %s with %s still parked; parkpage is still draining (`parkpage drain --cancel` ends it)\n", why, calls(st.Parked))
			return 1
		case <-tick.C:
		}
		if st, err = c.status(); err != nil {
			return fail(err)
		}
	}
}

func calls(n int) string {
	if n == 1 {
		return "1 call"
	}
	return fmt.Sprintf("%d calls", n)
}

type drainClient struct{ base, token string }

// do sends method to /api/v1/drain and returns the drain's status.
func (c drainClient) do(method string) (api.DrainStatus, error) {
	var st api.DrainStatus
	err := c.call(method, "drain", &st)
	return st, err
}

// status reads the drain from GET /api/v1/status.
func (c drainClient) status() (api.DrainStatus, error) {
	var st api.Status
	if err := c.call("GET", "status", &st); err != nil {
		return api.DrainStatus{}, err
	}
	if st.Drain == nil {
		return api.DrainStatus{}, errors.New("GET /api/v1/status: no drain status (is this parkpage too old for drain?)")
	}
	return *st.Drain, nil
}

func (c drainClient) call(method, path string, v any) error {
	url := c.base + path
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if method != http.MethodGet {
		// Every state-changing API request says JSON (the console's rule).
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is the appliance running? %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		var e struct{ Error string }
		json.NewDecoder(res.Body).Decode(&e)
		return fmt.Errorf("%s %s: %s: %s", method, url, res.Status, e.Error)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}
