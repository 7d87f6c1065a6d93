package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// listen opens a TCP listener, prints its address on stdout, and closes it
// on SIGTERM or SIGINT.
func listen(addr string) (*net.TCPListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	fmt.Println(ln.Addr().String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ln.Close()
	}()
	return ln.(*net.TCPListener), nil
}

// serve accepts until the listener closes, handling each connection on
// its own goroutine. Other accept errors (a connection reset before it was
// accepted, out of descriptors for a moment) are reported and the server
// goes on: a target that exits mid-run would fail the proxy under test.
func serve(ln *net.TCPListener, handle func(*net.TCPConn)) error {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil // closed by a signal
			}
			fmt.Fprintf(os.Stderr, "gwbench: accept: %v\n", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go handle(c)
	}
}

func runEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	return serve(ln, func(c *net.TCPConn) {
		defer c.Close()
		// A plain read/write copy, not io.Copy(c, c): that splices, and
		// Go's splice holds a pipe pair (two descriptors) for the whole
		// copy, so idle tunnels would cost the target three descriptors
		// each and exhaust its limit long before the proxy's.
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

func runSource(args []string) error {
	fs := flag.NewFlagSet("source", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "listen address")
	n := fs.Int64("bytes", 1<<30, "bytes sent on every connection")
	chunk := fs.Int64("file-mib", 64, "size of the file sent repeatedly (MiB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.CreateTemp("", "gwbench-source-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = io.CopyN(f, rand.Reader, *chunk<<20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fill source file: %w", err)
	}
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	return serve(ln, func(c *net.TCPConn) {
		defer c.Close()
		src, err := os.Open(f.Name())
		if err != nil {
			return
		}
		defer src.Close()
		_ = sendN(c, src, *n, *chunk<<20)
	})
}

// sendN sends n bytes from the start of f (size bytes long), repeating it;
// TCPConn.ReadFrom of an *io.LimitedReader over an *os.File uses
// sendfile(2). Each connection needs its own file offset, so callers pass
// their own *os.File.
func sendN(c *net.TCPConn, f *os.File, n, size int64) error {
	for n > 0 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		w, err := c.ReadFrom(&io.LimitedReader{R: f, N: min(n, size)})
		n -= w
		if err != nil {
			return err
		}
		if w == 0 {
			return io.ErrUnexpectedEOF
		}
	}
	return c.CloseWrite()
}
