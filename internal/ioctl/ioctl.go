// Package ioctl is the one raw ioctl(2) call parkpage's device code uses
// (ALSA mixer controls, GPIO character devices): retried on EINTR, the
// errno returned as an error.
package ioctl

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Do issues ioctl req on fd with arg, retrying when a signal interrupts it.
func Do(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}
