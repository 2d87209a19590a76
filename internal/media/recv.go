package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"golang.org/x/sys/unix"
)

// Receiving. A parked caller's RTP needs no prompt attention: parkpage only
// notes that media still flows (the RTP timeout) and counts it. Waking a
// goroutine for every packet costs a scheduler round and two system calls
// (the read and the EAGAIN after it) per leg per 20 ms, and system calls
// are expensive on the small, mitigated machines parkpage runs on
// (2.5–8 µs each here). So a leg nobody listens to (no bridge, no OnAudio
// or OnDTMF callback) reads its socket every rxPoll with one recvmmsg for
// everything queued since; a listened-to leg reads each packet as it
// arrives. Setting a callback or bridging the leg wakes a polling reader
// at once (kick).

// rxPoll is how often a leg nobody listens to reads its socket. The
// kernel queues what arrives meanwhile (5 packets at 20 ms).
const rxPoll = 100 * time.Millisecond

// rxBatch is one recvmmsg call's buffers, shared through rxBatches by all
// polling legs (a leg holds one only while it reads).
type rxBatch struct {
	hdrs [rxBatchLen]unix.Mmsghdr
	iovs [rxBatchLen]unix.Iovec
	bufs [rxBatchLen][1600]byte
}

const rxBatchLen = 16

var rxBatches = sync.Pool{New: func() any {
	b := new(rxBatch)
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	return b
}}

// listened reports whether received packets need handling as they come.
func (l *Leg) listened() bool {
	if l.e.cfg.ReadEveryPacket {
		return true
	}
	l.mu.Lock()
	br := l.bridge
	l.mu.Unlock()
	if br != nil {
		return true
	}
	l.cbMu.Lock()
	defer l.cbMu.Unlock()
	return l.onAudio != nil || l.onDTMF != nil
}

// kickReader makes a polling reader look again now (a listener came, or
// the leg closed).
func (l *Leg) kickReader() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *Leg) readLoop() {
	defer close(l.recvDone)
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 1600)
	var h rtp.Header
	timer := time.NewTimer(rxPoll)
	defer timer.Stop()
	for {
		if l.listened() {
			n, _, err := l.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			l.receive(&h, buf[:n])
			continue
		}
		if err := l.drain(rc, &h); errors.Is(err, net.ErrClosed) {
			return
		}
		timer.Reset(rxPoll)
		select {
		case <-timer.C:
		case <-l.kick:
		}
	}
}

// drain handles every packet queued on the socket, rxBatchLen per system
// call, without waiting for more.
func (l *Leg) drain(rc syscall.RawConn, h *rtp.Header) error {
	b := rxBatches.Get().(*rxBatch)
	defer rxBatches.Put(b)
	for {
		var n int
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			for i := range b.hdrs {
				b.hdrs[i].Len = 0
			}
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), rxBatchLen, unix.MSG_DONTWAIT, 0, 0)
			n = int(r)
			if e != 0 {
				n, serr = 0, e
			}
			return true // never wait for readiness: the poll interval paces us
		})
		if err != nil {
			return err
		}
		for i := range n {
			l.receive(h, b.bufs[i][:b.hdrs[i].Len])
		}
		if serr != nil || n < rxBatchLen {
			return nil // EAGAIN: the queue is empty
		}
	}
}

// receive handles one datagram from the leg's socket.
func (l *Leg) receive(h *rtp.Header, pkt []byte) {
	hl, err := h.Unmarshal(pkt)
	if err != nil || h.Version != 2 {
		return
	}
	payload := pkt[hl:]
	if h.Padding && len(payload) > 0 {
		pad := int(payload[len(payload)-1])
		if pad > len(payload) {
			return
		}
		payload = payload[:len(payload)-pad]
	}
	if h.PayloadType >= 72 && h.PayloadType <= 76 {
		return // RTCP on the RTP port (rtcp-mux), ignored
	}
	l.received.Add(1)
	l.lastRecv.Store(time.Now().UnixNano())
	l.handle(h, payload, netip.AddrPort{})
}
