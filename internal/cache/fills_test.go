package cache

import (
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

// Fills shows a blob fill in progress with its bytes so far, its size and
// its readers, and a manifest fetch with the requests waiting on it; both
// leave the list when they end.
func TestFills(t *testing.T) {
	up := newFake()
	content := random(1 << 20)
	d := up.addBlob(content)
	up.gate = make(chan struct{})
	up.manGate = make(chan struct{})
	up.addManifest("v1", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+string(d)+`","size":`+strconv.Itoa(len(content))+`},"layers":[]}`))
	s, _ := newStore(t, up, nil)
	if got := s.Fills(); len(got) != 0 {
		t.Fatalf("Fills of an idle cache = %+v, want none", got)
	}
	r, _, err := s.OpenBlob(context.Background(), "aks/x", d)
	if err != nil {
		t.Fatal(err)
	}
	r2, _, err := s.OpenBlob(context.Background(), "aks/y", d)
	if err != nil {
		t.Fatal(err)
	}
	manDone := make(chan error, 1)
	go func() {
		_, err := s.GetManifest(context.Background(), "aks/x", oci.Reference{Tag: "v1"})
		manDone <- err
	}()
	var blob, man FillInfo
	waitUntil(t, "the blob's first half and the manifest fetch listed", func() bool {
		blob, man = FillInfo{}, FillInfo{}
		for _, f := range s.Fills() {
			switch f.Kind {
			case "blob":
				blob = f
			case "manifest":
				man = f
			}
		}
		return blob.Bytes == int64(len(content)/2) && man.Kind != ""
	})
	if blob.Digest != string(d) || blob.Repository != "aks/x" || blob.Size != int64(len(content)) || blob.Waiters != 2 || blob.StartedAt.IsZero() {
		t.Errorf("blob fill = %+v, want %s in aks/x, size %d, 2 waiters, a start time", blob, d, len(content))
	}
	if man.Repository != "aks/x" || man.Digest != "v1" || man.Waiters != 1 || man.Size != -1 {
		t.Errorf("manifest fetch = %+v, want aks/x v1 with 1 waiter", man)
	}
	r2.Close()
	r2.Close() // twice: counted once
	waitUntil(t, "one reader left", func() bool {
		for _, f := range s.Fills() {
			if f.Kind == "blob" {
				return f.Waiters == 1
			}
		}
		return false
	})
	close(up.gate)
	close(up.manGate)
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := <-manDone; err != nil {
		t.Fatalf("GetManifest = %v", err)
	}
	waitUntil(t, "no fills left", func() bool { return len(s.Fills()) == 0 })
}
