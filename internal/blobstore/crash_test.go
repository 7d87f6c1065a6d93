package blobstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
)

// The crash tests run this test binary again as a child that writes a large
// blob slowly and SIGKILL it in the middle of the write.
const (
	envCrashMode = "AIRLOCK_BLOBSTORE_CRASH_MODE"
	envCrashRoot = "AIRLOCK_BLOBSTORE_CRASH_ROOT"
)

const (
	crashBlobSize  = 8 << 20
	crashSent      = 4 << 20 // bytes the child writes before it stalls
	crashFirstPart = 1 << 20 // append mode: acknowledged before the stalled append
)

func crashBlob() []byte { return randBytes(424242, crashBlobSize) }

// stallingReader hands out data up to limit, then announces "stalled" on
// stdout and blocks forever. By the time it blocks, io.Copy has written
// everything it returned earlier.
type stallingReader struct {
	data  []byte
	limit int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.limit == 0 {
		fmt.Println("stalled")
		select {}
	}
	n := min(len(p), r.limit, 64<<10)
	copy(p, r.data[:n])
	r.data, r.limit = r.data[n:], r.limit-n
	return n, nil
}

// TestCrashChild is the child side; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(envCrashMode)
	if mode == "" {
		t.Skip("only runs as the child of a crash test")
	}
	s, err := Open(os.Getenv(envCrashRoot), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := crashBlob()
	d := oci.SHA256.FromBytes(b)
	switch mode {
	case "put":
		s.Put(d, &stallingReader{data: b, limit: crashSent}, -1)
	case "append":
		u, err := s.NewUpload()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Append(0, bytes.NewReader(b[:crashFirstPart]), -1); err != nil {
			t.Fatal(err)
		}
		fmt.Println("upload", u.ID())
		u.Append(crashFirstPart, &stallingReader{data: b[crashFirstPart:], limit: crashSent}, -1)
	}
	t.Fatal("child was not killed")
}

// runCrashChild starts the child, waits until it stalls mid-write, kills it
// with SIGKILL and returns what it printed before.
func runCrashChild(t *testing.T, mode, root string) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashMode+"="+mode, envCrashRoot+"="+root)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out []string
	timeout := time.After(60 * time.Second)
	for stalled := false; !stalled; {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited before stalling; output %q", out)
			}
			stalled = l == "stalled"
			out = append(out, l)
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not stall within 60s; output %q", out)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
	go func() {
		for range lines {
		}
	}()
	return out
}

// largestFile returns the size of the largest regular file under dir.
func largestFile(t *testing.T, dir string) int64 {
	t.Helper()
	var max int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > max {
			max = fi.Size()
		}
		return nil
	})
	return max
}

func TestCrashDuringPut(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	root := filepath.Join(t.TempDir(), "root")
	runCrashChild(t, "put", root)
	b := crashBlob()
	d := oci.SHA256.FromBytes(b)

	// The kill really happened mid-write: a partial temp file is there.
	if got := largestFile(t, filepath.Join(root, dirTmp)); got < crashSent {
		t.Fatalf("largest temp file at the kill = %d bytes, want >= %d (kill was not mid-write)", got, crashSent)
	}
	s := openStore(t, root, Options{})
	if got := dirEntries(t, s.tmpDir()); len(got) != 0 {
		t.Fatalf("tmp after Open = %v, want empty", got)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("Stat after crash = %v, want ErrBlobUnknown", err)
	}
	if got := blobFiles(t, s); len(got) != 0 {
		t.Fatalf("blob files after crash = %v, want none", got)
	}
	if n, err := s.Put(d, bytes.NewReader(b), -1); err != nil || n != crashBlobSize {
		t.Fatalf("retry Put = %d, %v, want %d, nil", n, err, crashBlobSize)
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, b) {
		t.Fatal("blob after retry differs")
	}
}

func TestCrashDuringAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	root := filepath.Join(t.TempDir(), "root")
	out := runCrashChild(t, "append", root)
	var id string
	for _, l := range out {
		if v, ok := strings.CutPrefix(l, "upload "); ok {
			id = v
		}
	}
	if id == "" {
		t.Fatalf("child printed no upload id: %q", out)
	}
	b := crashBlob()
	d := oci.SHA256.FromBytes(b)
	// The kill really happened mid-append: the part being written is a
	// partial temp file (parts become objects only whole).
	if got := largestFile(t, filepath.Join(root, dirTmp)); got < crashSent {
		t.Fatalf("largest temp file at the kill = %d bytes, want >= %d (kill was not mid-append)", got, crashSent)
	}

	s := openStore(t, root, Options{})
	if _, err := s.Stat(d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("Stat after crash = %v, want ErrBlobUnknown", err)
	}
	u, err := s.Upload(id)
	if err != nil {
		t.Fatalf("Upload(%s) after crash = %v", id, err)
	}
	// The interrupted append was never acknowledged: the upload is as the
	// first append left it.
	if u.Size() != crashFirstPart {
		t.Fatalf("Size() after crash = %d, want %d", u.Size(), crashFirstPart)
	}
	if got := dirEntries(t, s.uploadDir(id)); len(got) != 2 {
		t.Fatalf("upload objects after reload = %v, want the state and one part", got)
	}
	if _, err := u.Append(crashFirstPart, io.NopCloser(bytes.NewReader(b[crashFirstPart:])), -1); err != nil {
		t.Fatalf("resume Append = %v", err)
	}
	if _, err := u.Commit("crash/test", d); err != nil {
		t.Fatalf("Commit after crash = %v", err)
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, b) {
		t.Fatal("blob after resumed upload differs")
	}
}
