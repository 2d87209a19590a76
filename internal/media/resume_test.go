package media

import (
	"net"
	"testing"
	"time"
)

// A leg resumed right after a restart waits for its port while the
// process before still holds it (its sockets outlive its exit for a
// moment), instead of giving the call up at once; a port held for good
// fails after resumeBindWait, and only the first such port waits.
func TestResumeLegWaitsForItsPort(t *testing.T) {
	defer func(d time.Duration) { resumeBindWait = d }(resumeBindWait)
	resumeBindWait = 3 * time.Second
	e := testEngine(t)
	held := func(port int) *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			t.Fatalf("holding port %d: %v", port, err)
		}
		return c
	}
	port := e.ports.first + 10
	e.ReservePorts([]int{port, port + 2, port + 4})
	old := held(port)
	time.AfterFunc(300*time.Millisecond, func() { old.Close() })
	start := time.Now()
	l, err := e.ResumeLeg(LegState{Port: port, SSRC: 1})
	if err != nil {
		t.Fatalf("resume while the old socket goes away: %v", err)
	}
	l.Close()
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("resumed after %v, before the port was free", d)
	}

	// Held for good: the resume gives up once the wait is spent, and the
	// next busy port does not wait again.
	stuck, stuck2 := held(port+2), held(port+4)
	defer stuck.Close()
	defer stuck2.Close()
	start = time.Now()
	if _, err := e.ResumeLeg(LegState{Port: port + 2, SSRC: 2}); err == nil {
		t.Fatal("resumed on a port held by another socket")
	}
	if d := time.Since(start); d > resumeBindWait+2*time.Second {
		t.Fatalf("gave up after %v, want about %v", d, resumeBindWait)
	}
	start = time.Now()
	if _, err := e.ResumeLeg(LegState{Port: port + 4, SSRC: 3}); err == nil {
		t.Fatal("resumed on a port held by another socket")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a second busy port waited %v again", d)
	}
	e.ReleaseReserved()
}
