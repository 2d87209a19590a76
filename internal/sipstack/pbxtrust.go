package sipstack

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// pbxTrust returns the addresses of the sip.pbx host: naming the PBX is
// how it is let in (the default trusts loopback only). A host name is
// resolved once per (re)load; when it cannot be resolved the PBX is not
// trusted and that is logged, so the admin can use an address instead.
func pbxTrust(pbx *sip.Uri, log *slog.Logger) []netip.Prefix {
	if pbx == nil || pbx.Host == "" {
		return nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(pbx.Host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		log.Warn("sip: pbx host not resolved, so not trusted; put its address in sip.pbx or sip.trusted", "host", host, "error", err)
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}
