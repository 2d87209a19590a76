package proctest

import (
	"bufio"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proc is a process a test runs (parkpage itself, a peer) whose output
// it reads line by line, to learn readiness from a log line instead of
// sleeping.
type Proc struct {
	Cmd *exec.Cmd

	mu     sync.Mutex
	lines  []string
	next   int           // first line the next WaitLine looks at
	more   chan struct{} // closed and replaced when a line arrives
	ended  bool
	done   chan struct{} // closed when the output has ended
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited
}

// Start runs name with args; its stdout and stderr are kept. The process
// is killed when the test ends, and its output printed if the test failed.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return StartCmd(t, exec.Command(name, args...))
}

// StartCmd is Start for a command the caller has set up (a wrapper such as
// `ip netns exec`, an environment); its Stdout and Stderr are replaced.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	name := cmd.Path
	p := &Proc{Cmd: cmd, more: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
		p.mu.Lock()
		p.ended = true
		close(p.more)
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.exited
		<-p.done
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, Tail(p.Output(), 60))
		}
	})
	return p
}

// WaitLine waits up to timeout for an output line matching re, after the
// line the previous WaitLine matched, and returns its submatches; the test
// fails if none comes or the process ends first.
func (p *Proc) WaitLine(t testing.TB, re string, timeout time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		more, ended := p.more, p.ended
		for ; p.next < len(p.lines); p.next++ {
			if m := rx.FindStringSubmatch(p.lines[p.next]); m != nil {
				p.next++
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		if ended {
			t.Fatalf("%s ended before a line matching %q:\n%s", p.Cmd.Path, re, Tail(p.Output(), 60))
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("%s: no line matching %q within %v:\n%s", p.Cmd.Path, re, timeout, Tail(p.Output(), 60))
		}
	}
}

// Wait waits up to timeout for the process to exit (killing it then) and
// returns its exit status; Output then holds all it wrote.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.exited
	}
	<-p.done
	return p.err
}

// Output is what the process wrote so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}
