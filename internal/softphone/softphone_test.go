package softphone

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/media"
)

// A call to a real peer (sipp as a phone that answers): INVITE with our
// SDP, 200, ACK, then our BYE, which sipp must receive for the scenario
// to pass.
func TestDialAndHangUpAgainstSipp(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is not installed (apt-get install sip-tester): %v", err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	eng, err := media.NewEngine(media.Config{IP: lo, PortMin: 42000, PortMax: 42999}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eng.Run(ctx)

	port, mport := freeUDP(t), freeUDP(t)
	scen, _ := filepath.Abs("../../park/testdata/sipp/uas_answer.xml")
	sipp := exec.Command("sipp", "-sf", scen, "-i", "127.0.0.1", "-p", port.String(), "-m", "1", "-nostdin",
		"-key", "from", "1002", "-key", "mport", mport.String(), "-timeout", "60s", "-timeout_error")
	var out bytes.Buffer // read only once sipp has exited
	sipp.Stdout, sipp.Stderr = &out, &out
	if err := sipp.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sipp.Wait() }()
	stopSipp := func() string {
		sipp.Process.Kill()
		<-done
		return out.String()
	}
	t.Cleanup(func() { sipp.Process.Kill() })

	p, err := New(Options{User: "701", Display: "701 Sales", IP: lo, Media: eng})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	call, err := p.Dial(dctx, sip.Uri{Scheme: "sip", User: "1002", Host: "127.0.0.1", Port: int(port)})
	if err != nil {
		t.Fatalf("dial: %v\nsipp:\n%s", err, stopSipp())
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatalf("hang up: %v", err)
	}
	select {
	case <-call.Done():
	case <-time.After(5 * time.Second):
		t.Error("call not done after hang-up")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sipp: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("sipp did not finish\n%s", stopSipp())
	}
}

type portNum int

func (p portNum) String() string { return strconv.Itoa(int(p)) }

func freeUDP(t *testing.T) portNum {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return portNum(c.LocalAddr().(*net.UDPAddr).Port)
}
