// Package sipptest runs sipp (Debian package sip-tester) scenarios as the
// real SIP peer of a test: a phone calling in, a PBX or an amplifier
// answering. It picks free ports, waits until a UAS scenario's socket is
// bound, keeps sipp's output, error and message logs, and kills sipp when
// the test ends. Only tests import it.
package sipptest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// Options describe one sipp run.
type Options struct {
	// Scenario is the scenario file (relative to the test's directory or
	// absolute).
	Scenario string
	// Target is the host:port a UAC scenario calls; empty for a UAS
	// scenario, which Start waits for until its socket is bound.
	Target string
	// Service is the user part of the Request-URI (sipp -s).
	Service string
	// Port is sipp's SIP port on 127.0.0.1; 0: a free one.
	Port int
	// Calls is how many calls (dialogs) the run makes or takes; 0: 1.
	Calls int
	// Keys are -key values, or -set where the scenario declares the
	// variable (variable="name").
	Keys map[string]string
	// Timeout is sipp's own limit (-timeout, then -timeout_error); 0: 30s.
	Timeout time.Duration
	// Args are more sipp arguments (-mp, -default_behaviors...).
	Args []string
}

// Sipp is one running sipp.
type Sipp struct {
	t    testing.TB
	name string
	port int
	dir  string
	cmd  *exec.Cmd
	out  logtest.Buffer
	done chan struct{}
	err  error
}

// Start runs sipp with o; the test fails if sipp is not installed or
// does not start.
func Start(t testing.TB, o Options) *Sipp {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is not installed (Debian package sip-tester): %v", err)
	}
	scen, err := filepath.Abs(o.Scenario)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(scen)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sipp{t: t, name: filepath.Base(scen), dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		s.port = o.Port
		if s.port == 0 {
			s.port = proctest.FreePort(t, "udp")
		}
		s.start(o, scen, string(body))
		if o.Target != "" || s.waitBound() {
			break
		}
		// The free port was taken before sipp bound it: try another.
		s.kill()
		if o.Port != 0 || attempt == 2 {
			t.Fatalf("sipp %s did not bind UDP port %d:\n%s", s.name, s.port, s.Output())
		}
	}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("sipp %s: %v\n%s", s.name, s.err, s.Logs())
		}
	})
	return s
}

func (s *Sipp) start(o Options, scen, body string) {
	s.t.Helper()
	calls := max(o.Calls, 1)
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	args := []string{"-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(s.port), "-m", strconv.Itoa(calls),
		"-nostdin", "-timeout", fmt.Sprintf("%ds", int(timeout.Seconds())), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(s.dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(s.dir, "messages.log"),
		"-max_recv_loops", "1000"}
	if o.Target != "" {
		args = append([]string{o.Target}, args...)
	}
	if o.Service != "" {
		args = append(args, "-s", o.Service)
	}
	for k, v := range o.Keys {
		if strings.Contains(body, `variable="`+k+`"`) {
			args = append(args, "-set", k, v)
		} else {
			args = append(args, "-key", k, v)
		}
	}
	args = append(args, o.Args...)
	s.out.Reset()
	s.done = make(chan struct{})
	s.err = nil
	s.cmd = exec.Command("sipp", args...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start sipp: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
}

// waitBound waits until sipp's UDP socket shows in /proc/net/udp (no probe
// socket, which could race sipp for the port), or sipp exits.
func (s *Sipp) waitBound() bool {
	hexPort := fmt.Sprintf(":%04X ", s.port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return false
		default:
		}
		data, _ := os.ReadFile("/proc/net/udp")
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 1 && strings.HasPrefix(f[1], "0100007F:") && strings.HasSuffix(f[1]+" ", hexPort) {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func (s *Sipp) kill() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Name is the scenario's file name.
func (s *Sipp) Name() string { return s.name }

// Port is sipp's SIP port on 127.0.0.1.
func (s *Sipp) Port() int { return s.port }

// Addr is sipp's SIP address, 127.0.0.1:port.
func (s *Sipp) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URI is sip:user@127.0.0.1:port.
func (s *Sipp) URI(user string) string { return fmt.Sprintf("sip:%s@127.0.0.1:%d", user, s.port) }

// Done is closed when sipp has exited.
func (s *Sipp) Done() <-chan struct{} { return s.done }

// Wait waits up to timeout for sipp to finish (killing it then) and
// returns nil only if every call passed its scenario (sipp exits 0 only
// then); the error carries sipp's logs.
func (s *Sipp) Wait(timeout time.Duration) error {
	select {
	case <-s.done:
		if s.err == nil {
			return nil
		}
		return fmt.Errorf("sipp %s: %w\n%s", s.name, s.err, s.Logs())
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("sipp %s still running after %v\n%s", s.name, timeout, s.Logs())
	}
}

// MustPass is Wait that fails the test on an error.
func (s *Sipp) MustPass(timeout time.Duration) {
	s.t.Helper()
	if err := s.Wait(timeout); err != nil {
		s.t.Fatal(err)
	}
}

// Output is what sipp wrote to stdout and stderr.
func (s *Sipp) Output() string { return s.out.String() }

// Messages is sipp's message trace (-trace_msg).
func (s *Sipp) Messages() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "messages.log"))
	return string(b)
}

// Errors is sipp's error log (-trace_err).
func (s *Sipp) Errors() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "errors.log"))
	return string(b)
}

// Logs is the tail of sipp's output, its error log and the tail of its
// message trace: what to print when a test fails.
func (s *Sipp) Logs() string {
	return fmt.Sprintf("output:\n%s\nerrors:\n%s\nmessages:\n%s",
		proctest.Tail(s.Output(), 30), proctest.Tail(s.Errors(), 30), proctest.Tail(s.Messages(), 80))
}
