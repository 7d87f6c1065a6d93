package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg takes and one sendmmsg
// answers at most.
const batchSize = 32

// mmsghdr is struct mmsghdr: Go pads it to the alignment of Msghdr the way
// C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchIO reads up to batchSize datagrams per system call (recvmmsg) and
// sends the fast path's answers to them in one (sendmmsg). All buffers are
// allocated once.
//
// Both calls never block (MSG_DONTWAIT; the netpoller waits) and are made
// as raw system calls: a sendmmsg of a full batch takes longer than the
// 20 µs after which the runtime's sysmon would take the P away from a
// goroutine in a system call, and with GOMAXPROCS=1 (the server pinned to
// one CPU) every batch then paid a thread handoff and sysmon kept waking
// every 20 µs.
type batchIO struct {
	rc    syscall.RawConn
	in    [batchSize]mmsghdr
	inIov [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6 // large enough for either family
	bufs  [batchSize][]byte
	oobs  [batchSize][]byte

	out     [batchSize]mmsghdr
	outIov  [batchSize]unix.Iovec
	outBufs [batchSize][]byte
}

func newBatchIO(rc syscall.RawConn) *batchIO {
	b := &batchIO{rc: rc}
	for i := range batchSize {
		b.bufs[i] = make([]byte, upstreamUDPSize+1)
		b.oobs[i] = make([]byte, 128)
		b.outBufs[i] = make([]byte, 0, upstreamUDPSize)
		b.inIov[i].Base = &b.bufs[i][0]
		b.inIov[i].SetLen(len(b.bufs[i]))
		h := &b.in[i].hdr
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)
	}
	return b
}

// recv fills the receive slots; it waits (in the netpoller) until at least
// one datagram is there.
func (b *batchIO) recv() (int, error) {
	for i := range batchSize {
		h := &b.in[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Control = &b.oobs[i][0]
		h.SetControllen(len(b.oobs[i]))
		h.Flags = 0
		b.in[i].n = 0
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// addrPort decodes slot i's sender.
func (b *batchIO) addrPort(i int) (netip.AddrPort, bool) {
	sa := &b.names[i]
	raw := (*[unsafe.Sizeof(*sa)]byte)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16(raw[2:4])
	switch sa.Family {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), port), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), true
	}
	return netip.AddrPort{}, false
}

// send transmits out[:n]; a datagram the kernel refuses is dropped (the
// client retries), as a failed write would be.
func (b *batchIO) send(n int) {
	for done := 0; done < n; {
		var sent int
		var errno syscall.Errno
		err := b.rc.Write(func(fd uintptr) bool {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[done])), uintptr(n-done), unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			sent, errno = int(r), e
			return true
		})
		switch {
		case err != nil:
			return
		case errno != 0 || sent <= 0:
			done++ // skip the datagram that failed
		default:
			done += sent
		}
	}
}

// run reads the socket until it is closed, batching reads and the fast
// path's writes.
func (f *udpFront) run() {
	rc, err := f.conn.SyscallConn()
	if err != nil {
		f.runSimple()
		return
	}
	b := newBatchIO(rc)
	var key []byte
	for {
		n, err := b.recv()
		if err != nil {
			if !readError(err) {
				return
			}
			continue
		}
		nout := 0
		for i := range n {
			in := &b.in[i]
			ap, ok := b.addrPort(i)
			if !ok {
				continue // not from an IP address: nothing to answer
			}
			oob := b.oobs[i][:in.hdr.Controllen]
			ans, reply, open := f.serveOne(b.bufs[i][:in.n], ap, oob, b.outBufs[nout], &key)
			if !open {
				return
			}
			if ans == nil {
				continue
			}
			o := &b.out[nout]
			b.outIov[nout].Base = &ans[0]
			b.outIov[nout].SetLen(len(ans))
			o.hdr = unix.Msghdr{Name: in.hdr.Name, Namelen: in.hdr.Namelen, Iov: &b.outIov[nout]}
			o.hdr.SetIovlen(1)
			if len(reply) > 0 {
				o.hdr.Control = &reply[0]
				o.hdr.SetControllen(len(reply))
			}
			nout++
		}
		if nout > 0 {
			b.send(nout)
		}
	}
}
