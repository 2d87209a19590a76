package api

import "syscall"

var errAddrInUse = syscall.EADDRINUSE
