package pacer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// An io_uring for sending: one io_uring_enter system call sends every
// packet of a wake-up, whatever socket it leaves on. sendmmsg batches only
// the packets of one socket, and a call leg has a socket of its own (its
// RTP port), so with sendmmsg 500 parked calls cost 500 system calls per
// 20 ms; a system call costs 2.5–8 µs on a mitigated virtual machine
// (PTI, retpolines), which made them the bulk of a parked call's cost.
//
// The sockets are registered in the ring's fixed-file table while a stream
// uses them, so the ring holds its own reference to each: a socket closed by
// its owner meanwhile cannot have its descriptor number reused under us.
// Every send carries MSG_DONTWAIT, so a full socket buffer completes at
// once with EAGAIN (counted as dropped, as with sendmmsg) instead of
// parking the request.
//
// Where io_uring is missing or forbidden (old kernel, seccomp,
// kernel.io_uring_disabled), the Pacer logs it once and uses sendmmsg.

const (
	ioringOpSendmsg         = 9
	ioringEnterGetevents    = 1 << 0
	ioringRegisterFiles     = 2
	ioringRegisterFilesUpd  = 6
	ioringFeatSingleMmap    = 1 << 0
	ioringOffSQRing         = 0
	ioringOffCQRing         = 0x8000000
	ioringOffSQEs           = 0x10000000
	ioSqeFixedFile          = 1 << 0
	ringEntries             = 1024 // packets per io_uring_enter; more go in several
	ringCQEntries           = 8192
	ioringSetupCQSize       = 1 << 3
	ringFiles               = 8192 // sockets registered at once; beyond, sendmmsg
	sizeofSQE               = 64
	sizeofCQE               = 16
	sizeofIoUringParams     = 120
	sqOffHead, cqOffHead    = 40, 80 // offsets of sq_off and cq_off in io_uring_params
	sqeOffFD, sqeOffAddr    = 4, 16
	sqeOffLen, sqeOffFlags  = 24, 28
	sqeOffUserData          = 32
	cqeOffRes               = 8
	sqeOffOpcode, sqeOffFlg = 0, 1
)

// ring is the Pacer's io_uring, used from the loop thread only.
type ring struct {
	fd                          int
	sqMem, cqMem, sqeMem        []byte
	sqHead, sqTail, sqArray     *uint32
	sqMask, sqEntries           uint32
	cqHead, cqTail              *uint32
	cqMask                      uint32
	cqes                        unsafe.Pointer
	slots                       map[*ipv4.PacketConn]*fileSlot
	free                        []int32
	hdrs                        []unix.Msghdr
	iovs                        []unix.Iovec
	names                       []unix.RawSockaddrInet6 // big enough for either family
	res                         []int32                 // result of each packet of the last submit
	ahead                       aheadState              // kernel-timed sends (ahead.go)
	failed                      atomic.Bool
	lastSetupErr, lastUpdateErr error
}

// fileSlot is a socket's place in the fixed-file table, shared by the
// streams sending on it.
type fileSlot struct {
	idx    int32
	users  int
	family int // the socket's address family: AF_INET6 sockets take v4-mapped addresses
}

func newRing() (*ring, error) {
	var params [sizeofIoUringParams]byte
	// Timed sends complete while the loop may not run to reap them: room
	// for a few hundred milliseconds of every stream's completions.
	*(*uint32)(unsafe.Pointer(&params[4])) = ringCQEntries
	*(*uint32)(unsafe.Pointer(&params[8])) = ioringSetupCQSize
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, ringEntries, uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &ring{fd: int(fd), slots: map[*ipv4.PacketConn]*fileSlot{}}
	u32 := func(off int) uint32 { return *(*uint32)(unsafe.Pointer(&params[off])) }
	sqEntries, cqEntries, features := u32(0), u32(4), u32(20)
	// io_sqring_offsets: head, tail, ring_mask, ring_entries, flags, dropped, array
	sqOff := func(i int) uint32 { return u32(sqOffHead + 4*i) }
	// io_cqring_offsets: head, tail, ring_mask, ring_entries, overflow, cqes
	cqOff := func(i int) uint32 { return u32(cqOffHead + 4*i) }
	sqSize := int(sqOff(6) + sqEntries*4)
	cqSize := int(cqOff(5) + cqEntries*sizeofCQE)
	if features&ioringFeatSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	fail := func(what string, e error) (*ring, error) {
		r.close()
		return nil, fmt.Errorf("io_uring %s: %w", what, e)
	}
	if r.sqMem, err = unix.Mmap(r.fd, ioringOffSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("mmap", err)
	}
	r.cqMem = r.sqMem
	if features&ioringFeatSingleMmap == 0 {
		if r.cqMem, err = unix.Mmap(r.fd, ioringOffCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fail("mmap", err)
		}
	}
	if r.sqeMem, err = unix.Mmap(r.fd, ioringOffSQEs, int(sqEntries)*sizeofSQE, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("mmap", err)
	}
	at := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail, r.sqArray = at(r.sqMem, sqOff(0)), at(r.sqMem, sqOff(1)), at(r.sqMem, sqOff(6))
	r.sqMask, r.sqEntries = *at(r.sqMem, sqOff(2)), sqEntries
	r.cqHead, r.cqTail = at(r.cqMem, cqOff(0)), at(r.cqMem, cqOff(1))
	r.cqMask = *at(r.cqMem, cqOff(2))
	r.cqes = unsafe.Pointer(&r.cqMem[cqOff(5)])

	// An empty (sparse) fixed-file table: -1 marks a free slot.
	// The kernel refuses a table larger than the open-file limit (EMFILE).
	files := ringFiles
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < uint64(files) {
		files = max(int(lim.Cur), 64)
	}
	fds := make([]int32, files)
	for i := range fds {
		fds[i] = -1
		r.free = append(r.free, int32(files-1-i))
	}
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), ioringRegisterFiles, uintptr(unsafe.Pointer(&fds[0])), uintptr(files), 0, 0); errno != 0 {
		return fail("register files", errno)
	}
	return r, nil
}

func (r *ring) close() {
	r.drain()
	if r.sqeMem != nil {
		_ = unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && len(r.sqMem) > 0 && &r.cqMem[0] != &r.sqMem[0] {
		_ = unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		_ = unix.Munmap(r.sqMem)
	}
	r.sqeMem, r.cqMem, r.sqMem = nil, nil, nil
	if r.fd > 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// updateFile puts fd (or -1: empty) in slot idx of the fixed-file table.
func (r *ring) updateFile(idx, fd int32) error {
	upd := struct {
		offset uint32
		resv   uint32
		fds    uint64
	}{offset: uint32(idx), fds: uint64(uintptr(unsafe.Pointer(&fd)))}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), ioringRegisterFilesUpd, uintptr(unsafe.Pointer(&upd)), 1, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// acquire returns pc's slot in the fixed-file table, registering its
// socket when no stream uses it yet; ok is false when the table is full
// or the socket cannot be registered (the stream then uses sendmmsg).
func (r *ring) acquire(pc *ipv4.PacketConn) (int32, bool) {
	if s := r.slots[pc]; s != nil {
		s.users++
		return s.idx, true
	}
	if len(r.free) == 0 {
		return 0, false
	}
	sc, ok := pc.PacketConn.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	idx := r.free[len(r.free)-1]
	var uerr error
	family := unix.AF_INET
	// Control holds the descriptor open while the ring takes its reference.
	if err := raw.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			if _, ok := sa.(*unix.SockaddrInet6); ok {
				family = unix.AF_INET6
			}
		}
		uerr = r.updateFile(idx, int32(fd))
	}); err != nil || uerr != nil {
		r.lastUpdateErr = errors.Join(err, uerr)
		return 0, false
	}
	r.free = r.free[:len(r.free)-1]
	r.slots[pc] = &fileSlot{idx: idx, users: 1, family: family}
	return idx, true
}

// release drops a stream's use of pc's slot; the last user unregisters
// the socket, so its owner's Close really closes it.
func (r *ring) release(pc *ipv4.PacketConn) {
	s := r.slots[pc]
	if s == nil {
		return
	}
	if s.users--; s.users > 0 {
		return
	}
	delete(r.slots, pc)
	_ = r.updateFile(s.idx, -1)
	r.free = append(r.free, s.idx)
}

// putSockaddr writes addr (a *net.UDPAddr, or nil for a connected
// socket) as a raw sockaddr of the socket's family into name and returns
// its length.
func putSockaddr(name *unix.RawSockaddrInet6, family int, addr net.Addr) uint32 {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return 0
	}
	var port uint16
	*(*[2]byte)(unsafe.Pointer(&port)) = [2]byte{byte(ua.Port >> 8), byte(ua.Port)} // network order
	if family == unix.AF_INET && ip.Unmap().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: port, Addr: ip.Unmap().As4()}
		return unix.SizeofSockaddrInet4
	}
	// On an IPv4 socket an IPv6 destination fails in the kernel, as with sendmmsg.
	*name = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port, Addr: ip.As16()}
	return unix.SizeofSockaddrInet6
}

// ringRef is a packet of the submission being sent.
type ringRef struct {
	c *connBatch
	j int
}

// send sends the packets of every batch that has a slot in the ring (see
// batcher.flushRing) and returns each one's result in r.res (bytes sent, or
// -errno). err is set when the ring itself failed: the caller then stops
// using it.
func (r *ring) send(refs []ringRef) error {
	if len(r.hdrs) < len(refs) {
		r.hdrs = make([]unix.Msghdr, len(refs))
		r.iovs = make([]unix.Iovec, len(refs))
		r.names = make([]unix.RawSockaddrInet6, len(refs))
	}
	r.res = r.res[:0]
	for range refs {
		r.res = append(r.res, -int32(unix.EIO))
	}
	for off := 0; off < len(refs); off += ringEntries {
		part := refs[off:min(off+ringEntries, len(refs))]
		tail := *r.sqTail
		for k, ref := range part {
			i := off + k
			m := &ref.c.msgs[ref.j]
			pkt := m.Buffers[0]
			iov, hdr := &r.iovs[i], &r.hdrs[i]
			*iov = unix.Iovec{Base: unsafe.SliceData(pkt)}
			iov.SetLen(len(pkt))
			*hdr = unix.Msghdr{Iov: iov}
			hdr.SetIovlen(1)
			if n := putSockaddr(&r.names[i], ref.c.family, m.Addr); n > 0 {
				hdr.Name, hdr.Namelen = (*byte)(unsafe.Pointer(&r.names[i])), n
			}
			idx := (tail + uint32(k)) & r.sqMask
			sqe := unsafe.Pointer(&r.sqeMem[int(idx)*sizeofSQE])
			clear(unsafe.Slice((*byte)(sqe), sizeofSQE))
			*(*uint8)(unsafe.Add(sqe, sqeOffOpcode)) = ioringOpSendmsg
			*(*uint8)(unsafe.Add(sqe, sqeOffFlg)) = ioSqeFixedFile
			*(*int32)(unsafe.Add(sqe, sqeOffFD)) = ref.c.slot
			*(*uint64)(unsafe.Add(sqe, sqeOffAddr)) = uint64(uintptr(unsafe.Pointer(hdr)))
			*(*uint32)(unsafe.Add(sqe, sqeOffLen)) = 1
			*(*uint32)(unsafe.Add(sqe, sqeOffFlags)) = unix.MSG_DONTWAIT
			*(*uint64)(unsafe.Add(sqe, sqeOffUserData)) = tagNow<<tagShift | uint64(i)
			*(*uint32)(unsafe.Add(unsafe.Pointer(r.sqArray), 4*idx)) = idx
		}
		atomic.StoreUint32(r.sqTail, tail+uint32(len(part)))
		toSubmit, done := len(part), 0
		for done < len(part) {
			// RawSyscall: the loop keeps its P through the call. With
			// Syscall, a call of a few milliseconds (hundreds of sends)
			// has its P handed to another goroutine, and the loop could
			// then wait for a P on return while busy goroutines hold them.
			n, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(len(part)-done), ioringEnterGetevents, 0, 0)
			switch errno {
			case 0:
				toSubmit -= int(n)
			case unix.EINTR, unix.EAGAIN, unix.EBUSY:
			default:
				return fmt.Errorf("io_uring_enter: %w", errno)
			}
			done += r.reap()
		}
	}
	return nil
}

// reap takes the completions posted: immediate sends' results go to
// r.res, timed sends' to r.ahead.done for the loop to book. It returns how
// many immediate sends completed.
func (r *ring) reap() int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		cqe := unsafe.Add(r.cqes, uintptr(head&r.cqMask)*sizeofCQE)
		ud, res := *(*uint64)(cqe), *(*int32)(unsafe.Add(cqe, cqeOffRes))
		switch i := ud & tagMask; ud >> tagShift {
		case tagNow:
			if i < uint64(len(r.res)) {
				r.res[i] = res
			}
			n++
		case tagTimed:
			r.ahead.done = append(r.ahead.done, timedCQE{slot: int32(i), res: res})
		case tagMisc:
			if i < uint64(len(r.ahead.probe)) {
				r.ahead.probe[i] = res
			}
		}
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}
