package azuritetest

import (
	"net/http"
	"strings"
	"testing"
)

func answers(t *testing.T, a *Azurite) bool {
	t.Helper()
	resp, err := http.Get(a.Endpoint + "?comp=list")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func TestStartStopRestart(t *testing.T) {
	a := Start(t)
	if !strings.HasPrefix(a.Endpoint, "http://127.0.0.1:") || !strings.HasSuffix(a.Endpoint, "/"+Account) {
		t.Errorf("Endpoint = %q, want http://127.0.0.1:PORT/%s", a.Endpoint, Account)
	}
	if !answers(t, a) {
		t.Fatal("Azurite does not answer after Start")
	}
	a.Stop()
	if answers(t, a) {
		t.Fatal("Azurite still answers after Stop")
	}
	a.Stop() // a no-op when stopped
	a.Restart()
	if !answers(t, a) {
		t.Fatal("Azurite does not answer after Restart")
	}
	if cs := a.ConnectionString(); !strings.Contains(cs, "AccountName="+Account) || !strings.Contains(cs, "BlobEndpoint="+a.Endpoint) {
		t.Errorf("ConnectionString() = %q", cs)
	}
}

func TestInMemory(t *testing.T) {
	a := Start(t, InMemory())
	if !answers(t, a) {
		t.Fatal("in-memory Azurite does not answer")
	}
}

func TestContainerName(t *testing.T) {
	a, b := ContainerName(t), ContainerName(t)
	if a == b {
		t.Errorf("ContainerName twice = %q, want different names", a)
	}
	if len(a) < 3 || len(a) > 63 || strings.ToLower(a) != a || strings.Contains(a, "--") {
		t.Errorf("ContainerName = %q, want a valid container name", a)
	}
	long := strings.Repeat("Very_Long/Test Name ", 4)
	t.Run(long, func(t *testing.T) {
		if n := ContainerName(t); len(n) > 63 || strings.Contains(n, "--") || strings.HasPrefix(n, "-") {
			t.Errorf("ContainerName = %q, want a valid container name", n)
		}
	})
}
