package phonepage

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseAddr lets parkpage listen on a group and port that phones (or other
// programs on the box) also use.
func reuseAddr(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
