//go:build linux

package egress

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"
)

// The loop's system calls, made raw (without entersyscall/exitsyscall).
//
// Every descriptor the loop touches is non-blocking, so none of these calls
// waits: each is a few microseconds of kernel work. Made through
// syscall.Syscall, one that spans a tick of Go's sysmon (20 µs, easily
// reached by a loopback connect or write under a hypervisor) has its P
// taken away and handed to another thread, and the loop then waits to get
// a P back: with GOMAXPROCS=1 that is most flows, and it keeps sysmon
// waking every 20 µs. The loop waits for events only in Go's network
// poller (loop.wait), never in a system call.

func sysRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return sysResult(int(n), e)
}

func sysWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return sysResult(int(n), e)
}

func sysClose(fd int) {
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

func sysShutdown(fd, how int) {
	syscall.RawSyscall(syscall.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
}

func sysSetsockoptInt(fd, level, opt, v int) error {
	x := int32(v)
	_, _, e := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&x)), 4, 0)
	return errnoErr(e)
}

func sysGetsockoptInt(fd, level, opt int) (int, error) {
	var x int32
	l := uint32(4)
	_, _, e := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&x)), uintptr(unsafe.Pointer(&l)), 0)
	return int(x), errnoErr(e)
}

func sysEpollCtl(ep, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(ep), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// sysEpollPoll takes the ready events without waiting (timeout 0).
func sysEpollPoll(ep int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return sysResult(int(n), e)
}

func sysSocket(family, typ int) (int, error) {
	fd, _, e := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(family), uintptr(typ), 0)
	return sysResult(int(fd), e)
}

func sysAccept4(fd, flags int) (int, netip.AddrPort, error) {
	var rsa syscall.RawSockaddrAny
	l := uint32(syscall.SizeofSockaddrAny)
	nfd, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(nfd), rawAddrPort(&rsa), nil
}

// sysConnect starts a connect; EINPROGRESS is not an error.
func sysConnect(fd int, a netip.AddrPort) error {
	return sockaddrCall(syscall.SYS_CONNECT, fd, a)
}

func sysBind(fd int, a netip.AddrPort) error {
	return sockaddrCall(syscall.SYS_BIND, fd, a)
}

func sockaddrCall(trap uintptr, fd int, a netip.AddrPort) error {
	var (
		sa4 syscall.RawSockaddrInet4
		sa6 syscall.RawSockaddrInet6
		p   unsafe.Pointer
		n   uintptr
	)
	// The port field holds the port in network byte order.
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], a.Port())
	if a.Addr().Is4() {
		sa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Port: *(*uint16)(unsafe.Pointer(&port)), Addr: a.Addr().As4()}
		p, n = unsafe.Pointer(&sa4), syscall.SizeofSockaddrInet4
	} else {
		sa6 = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Port: *(*uint16)(unsafe.Pointer(&port)), Addr: a.Addr().As16()}
		p, n = unsafe.Pointer(&sa6), syscall.SizeofSockaddrInet6
	}
	_, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(p), n)
	return connectErr(e)
}

func connectErr(e syscall.Errno) error {
	if e == syscall.EINPROGRESS {
		return nil
	}
	return errnoErr(e)
}

func rawAddrPort(rsa *syscall.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), binary.BigEndian.Uint16(port[:]))
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), binary.BigEndian.Uint16(port[:]))
	}
	return netip.AddrPort{}
}

func sysResult(n int, e syscall.Errno) (int, error) {
	if e != 0 {
		return -1, e
	}
	return n, nil
}

func errnoErr(e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}
