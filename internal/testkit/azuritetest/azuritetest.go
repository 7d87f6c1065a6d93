// Package azuritetest runs Azurite, the Azure Storage emulator, for tests
// of the Azure Blob Storage driver (internal/storage/azblob). Only tests
// import it.
//
// Azurite is installed by scripts/tools.sh into $AIRLOCK_TOOLS/azurite
// (default /opt/airlock-tools). Without it Start skips the test, or fails
// it when AIRLOCK_REQUIRE_TOOLS=1. Azurite listens on 127.0.0.1 on a port
// picked at run time and always runs with --disableTelemetry, so it never
// reaches beyond the machine.
package azuritetest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
)

// The well-known development account every Azurite serves.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// startTimeout bounds how long Azurite may take to answer after starting.
const startTimeout = 30 * time.Second

// Azurite is one running azurite-blob.
type Azurite struct {
	// Endpoint is the blob service URL,
	// http://127.0.0.1:PORT/devstoreaccount1.
	Endpoint string

	t        testing.TB
	bin      string
	addr     string // 127.0.0.1:PORT
	dir      string // --location
	inMemory bool
	logPath  string

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when stopped
	waited chan struct{} // closed when cmd has exited
}

// Option changes how Start runs Azurite.
type Option func(*Azurite)

// InMemory keeps Azurite's data in memory (--inMemoryPersistence) instead
// of in a temporary directory; Restart then loses it.
func InMemory() Option { return func(a *Azurite) { a.inMemory = true } }

// Bin is the azurite-blob executable: $AIRLOCK_TOOLS/azurite/node_modules/.bin/azurite-blob.
func Bin() string {
	tools := os.Getenv("AIRLOCK_TOOLS")
	if tools == "" {
		tools = "/opt/airlock-tools"
	}
	return filepath.Join(tools, "azurite", "node_modules", ".bin", "azurite-blob")
}

// Start runs azurite-blob on a free loopback port, waits until it
// answers, and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Azurite {
	t.Helper()
	bin := Bin()
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("azurite not installed: run scripts/tools.sh (looked for %s)", bin)
		if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	a := &Azurite{t: t, bin: bin, addr: porttest.FreeAddr(t), dir: t.TempDir()}
	for _, o := range opts {
		o(a)
	}
	a.Endpoint = "http://" + a.addr + "/" + Account
	a.logPath = filepath.Join(a.dir, "azurite.log")
	t.Cleanup(a.Stop)
	a.start()
	return a
}

func (a *Azurite) start() {
	a.t.Helper()
	_, port, _ := net.SplitHostPort(a.addr)
	args := []string{
		"--blobHost", "127.0.0.1", "--blobPort", port,
		"--disableTelemetry", "--skipApiVersionCheck", "--loose",
	}
	if a.inMemory {
		args = append(args, "--inMemoryPersistence") // Azurite refuses it with --location
	} else {
		args = append(args, "--location", a.dir)
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.t.Fatalf("azurite log: %v", err)
	}
	defer logf.Close()
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = a.dir
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("start azurite: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	a.mu.Lock()
	a.cmd, a.waited = cmd, exited
	a.mu.Unlock()

	// Ready once it answers HTTP at all (an unauthenticated request gets 4xx).
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			a.Stop()
			a.t.Fatalf("azurite exited before answering on %s; log:\n%s", a.addr, a.log())
		default:
		}
		resp, err := client.Get(a.Endpoint + "?comp=list")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			a.Stop()
			a.t.Fatalf("azurite not answering on %s after %v: %v; log:\n%s", a.addr, startTimeout, err, a.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *Azurite) log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

// stopGrace is how long Azurite may take to save its data and exit
// after SIGTERM before it is killed.
const stopGrace = 10 * time.Second

// Stop ends Azurite (SIGTERM to its PID, so it saves its data; SIGKILL
// if it has not exited within stopGrace) and waits until it has exited; a
// no-op when stopped. Requests then fail with connection refused.
func (a *Azurite) Stop() {
	a.mu.Lock()
	cmd, exited := a.cmd, a.waited
	a.cmd, a.waited = nil, nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopGrace):
		cmd.Process.Kill()
		<-exited
	}
}

// Restart starts a stopped Azurite again on the same port with the same
// data directory (the data survives unless InMemory).
func (a *Azurite) Restart() {
	a.t.Helper()
	a.Stop()
	a.start()
}

// ConnectionString is the connection string of the development account
// on this Azurite (AZURE_STORAGE_CONNECTION_STRING).
func (a *Azurite) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + Account + ";AccountKey=" + Key +
		";BlobEndpoint=" + a.Endpoint + ";"
}

// URL is the airlock storage URL of container on this Azurite,
// azblob://CONTAINER?endpoint=...&create=true; the driver takes the
// account and key from AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY, or
// AZURE_STORAGE_CONNECTION_STRING (see SetEnv).
func (a *Azurite) URL(container string) string {
	return "azblob://" + container + "?endpoint=" + url.QueryEscape(a.Endpoint) + "&create=true"
}

// SetEnv sets AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY to the
// development account for the rest of t (t.Setenv: not with t.Parallel).
func SetEnv(t testing.TB) {
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	t.Setenv("AZURE_STORAGE_ACCOUNT", Account)
	t.Setenv("AZURE_STORAGE_KEY", Key)
}

// NewContainer returns the storage URL (as URL) of a container name no
// other test uses; the driver creates the container (create=true).
func (a *Azurite) NewContainer(t testing.TB) string {
	return a.URL(ContainerName(t))
}

// ContainerName is a fresh valid container name (3-63 lowercase letters,
// digits and dashes) derived from the test's name.
func ContainerName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > 44 {
		base = strings.Trim(base[:44], "-")
	}
	if base == "" {
		base = "t"
	}
	rnd := make([]byte, 8)
	rand.Read(rnd)
	return base + "-" + hex.EncodeToString(rnd)
}
