package demo

import (
	"fmt"
	"net"
	"sync"

	"github.com/pion/rtp"
	"golang.org/x/net/ipv4"

	"github.com/parkpage/parkpage/internal/codec"
)

// capture listens to a zone's RTP multicast on lo and decodes it, so the
// announcement can be written to a WAV file. The socket is bound to the
// group itself and joined on lo only: nothing is asked of any other
// interface.
type capture struct {
	conn *ipv4.PacketConn
	dec  codec.Decoder
	done chan struct{}

	mu      sync.Mutex
	pcm     []int16
	packets int
}

func listenZone(group string, port int, name codec.Name) (*capture, error) {
	c, err := net.ListenPacket("udp4", net.JoinHostPort(group, fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("capture %s:%d: %w", group, port, err)
	}
	p := ipv4.NewPacketConn(c)
	lo, err := loopbackInterface()
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := p.JoinGroup(lo, &net.UDPAddr{IP: net.ParseIP(group)}); err != nil {
		c.Close()
		return nil, fmt.Errorf("capture: join %s on %s: %w", group, lo.Name, err)
	}
	dec, err := codec.NewDecoder(name)
	if err != nil {
		c.Close()
		return nil, err
	}
	cp := &capture{conn: p, dec: dec, done: make(chan struct{})}
	go cp.read()
	return cp, nil
}

// loopbackInterface finds the loopback interface (lo on Linux).
func loopbackInterface() (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		if ifs[i].Flags&net.FlagLoopback != 0 && ifs[i].Flags&net.FlagUp != 0 {
			return &ifs[i], nil
		}
	}
	return nil, fmt.Errorf("no loopback interface is up")
}

func (c *capture) read() {
	defer close(c.done)
	buf := make([]byte, 2048)
	var out []int16
	for {
		n, _, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) == 0 {
			continue
		}
		out, err = c.dec.Decode(out[:0], pkt.Payload)
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.pcm = append(c.pcm, out...)
		c.packets++
		c.mu.Unlock()
	}
}

// stop closes the socket and returns the decoded audio (16 kHz mono) and
// the number of packets heard.
func (c *capture) stop() ([]int16, int) {
	c.conn.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pcm, c.packets
}
