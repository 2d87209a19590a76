package phonepage

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/multicast/polycom"
)

type nullPager struct{}

func (nullPager) Submit(context.Context, paging.Page) (*paging.Handle, error) {
	return nil, gateway.ErrClosed
}

// Any datagram on a phone-page group, Polycom or RTP, is handled without
// panicking.
func FuzzPacket(f *testing.F) {
	f.Add([]byte{0x0f, 0x1a, 0x12, 0x34, 0x56, 0x78, 0x0d, 'p', 'a', 'r', 'k', 0, 0, 0, 0, 0, 0, 0, 0, 0})
	// A G.726-QI Transmit (codec 0xFD) with one 20 ms frame of 60 bytes.
	f.Add(append([]byte{0x10, 0x1a, 0x12, 0x34, 0x56, 0x78, 0x0d, 'p', 'a', 'r', 'k', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0xa0}, make([]byte, 60)...))
	f.Add([]byte{0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xfe, 0xed, 0xff, 0xff})
	f.Add([]byte{0x80, 0x09, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xfe, 0xed, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &Receiver{opts: Options{Pager: nullPager{}, RTPTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}
		for _, typ := range []string{config.PhonePagePolycom, config.PhonePageRTP} {
			e := &config.PhonePage{Type: typ, Group: "239.255.44.9", Port: 5001, Channel: 26, Zones: []string{"z"}, Priority: "live"}
			l := &listener{r: r, entries: []*config.PhonePage{e}, polycom: map[int]*polycomPage{}}
			if typ == config.PhonePagePolycom {
				l.polycom[26] = &polycomPage{entry: e, re: &polycom.Reassembler{Channel: 26, AcceptWithoutAlert: true}}
			}
			var evs []polycom.Event
			src := netip.MustParseAddrPort("192.0.2.7:5001")
			l.packet(context.Background(), time.Now(), src, b, &evs)
			l.packet(context.Background(), time.Now(), src, b, &evs)
			l.tick(context.Background(), time.Now().Add(2*time.Second), &evs)
		}
	})
}
