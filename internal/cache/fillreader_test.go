package cache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
)

// runningFill is a fill whose temp file holds all of content but whose
// digest has not verified yet: the upstream has not ended the body.
func runningFill(t *testing.T, content string) (*fill, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fill")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	f := newFill("sha256:x", "r")
	f.size, f.written, f.path = int64(len(content)), int64(len(content)), path
	f.markStarted()
	return f, file
}

type readResult struct {
	b   string
	err error
}

// readOnce reads once in a goroutine of the bubble and reports the result;
// after synctest.Wait, a result is there iff the Read did not block.
func readOnce(r io.Reader) chan readResult {
	got := make(chan readResult, 1)
	go func() {
		p := make([]byte, 64)
		n, err := r.Read(p)
		got <- readResult{string(p[:n]), err}
	}()
	return got
}

// A fill reader hands out bytes before the digest verified only when its
// consumer streams to the end (StreamToEnd), and then never the last one:
// a reader that stops short of the end gets nothing until the verification.
// synctest.Wait returns once the reading goroutine is done or durably
// blocked, so "did not return" is exact, not a timeout.
func TestFillReaderHandsOutOnlyVerifiedBytes(t *testing.T) {
	const content = "abcd"
	tests := []struct {
		name      string
		stream    bool
		verifies  bool
		early     string // what the first Read returns before the verification
		afterward []readResult
	}{
		{name: "bounded, verifies", verifies: true, afterward: []readResult{{b: "abcd"}, {err: io.EOF}}},
		{name: "bounded, mismatch", afterward: []readResult{{err: errFillFailed}}},
		{name: "streaming, verifies", stream: true, verifies: true, early: "abc", afterward: []readResult{{b: "d"}, {err: io.EOF}}},
		{name: "streaming, mismatch", stream: true, early: "abc", afterward: []readResult{{err: errFillFailed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, file := runningFill(t, content)
				r := &fillReader{f: f, file: file}
				if tt.stream {
					r.StreamToEnd()
				}
				if tt.early != "" {
					if res := <-readOnce(r); res.b != tt.early || res.err != nil {
						t.Fatalf("Read before the verification = %q, %v; want %q", res.b, res.err, tt.early)
					}
				}
				off := r.off
				got := readOnce(r)
				synctest.Wait()
				select {
				case res := <-got:
					t.Fatalf("Read at offset %d before the verification = %q, %v; want it to wait", off, res.b, res.err)
				default:
				}
				if tt.verifies {
					f.verified()
				} else {
					f.fail(errors.New("digest mismatch"))
				}
				for i, want := range tt.afterward {
					var res readResult
					if i == 0 {
						res = <-got
					} else {
						res = <-readOnce(r)
					}
					if res.b != want.b || !errors.Is(res.err, want.err) {
						t.Errorf("Read %d after the verification = %q, %v; want %q, %v", i, res.b, res.err, want.b, want.err)
					}
				}
			})
		})
	}
}

func TestFillReaderVerified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, file := runningFill(t, "abcd")
		r := &fillReader{f: f, file: file}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan error, 1)
		go func() { got <- r.Verified(ctx) }()
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("Verified while the fill runs = %v, want it to wait", err)
		default:
		}
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Errorf("Verified after the request ended = %v, want context.Canceled", err)
		}
		go func() { got <- r.Verified(context.Background()) }()
		f.fail(errors.New("digest mismatch"))
		if err := <-got; !errors.Is(err, errFillFailed) || err.Error() != "cache fill failed: digest mismatch" {
			t.Errorf("Verified of a failed fill = %v, want errFillFailed with the reason", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		f, file := runningFill(t, "abcd")
		r := &fillReader{f: f, file: file}
		got := make(chan error, 1)
		go func() { got <- r.Verified(context.Background()) }()
		f.verified()
		if err := <-got; err != nil {
			t.Errorf("Verified of a verified fill = %v, want nil", err)
		}
	})
}
