package warm

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/airlockdev/airlock/internal/oci"
)

// fakeRegistry serves lib/img:1, an index of linux/amd64 and linux/arm64
// manifests that share their config blob; every other manifest is unknown.
type fakeRegistry struct {
	mu        sync.Mutex
	blobGets  map[string]int
	manifests map[string][]byte // by tag or digest
	blobs     map[oci.Digest][]byte
}

func newFakeRegistry(t *testing.T) (*fakeRegistry, *httptest.Server) {
	f := &fakeRegistry{blobGets: map[string]int{}, manifests: map[string][]byte{}, blobs: map[oci.Digest][]byte{}}
	blob := func(b string) oci.Descriptor {
		d := oci.Canonical.FromBytes([]byte(b))
		f.blobs[d] = []byte(b)
		return oci.Descriptor{Digest: d, Size: int64(len(b))}
	}
	cfg := blob("{}")
	var children []string
	for _, arch := range []string{"amd64", "arm64"} {
		layer := blob("layer-" + arch)
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cfg.Digest, cfg.Size, layer.Digest, layer.Size)
		d := oci.Canonical.FromBytes([]byte(m))
		f.manifests[string(d)] = []byte(m)
		children = append(children, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}}`, d, len(m), arch))
	}
	f.manifests["1"] = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + strings.Join(children, ",") + `]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ns") != "r.example" {
			http.Error(w, "no ns", http.StatusBadRequest)
			return
		}
		if what, ok := strings.CutPrefix(r.URL.Path, "/v2/lib/img/manifests/"); ok && f.manifests[what] != nil {
			w.Header().Set("Content-Type", "application/json") // generic: the body's mediaType decides
			w.Write(f.manifests[what])
			return
		}
		if what, ok := strings.CutPrefix(r.URL.Path, "/v2/lib/img/blobs/"); ok && f.blobs[oci.Digest(what)] != nil {
			f.mu.Lock()
			f.blobGets[what]++
			f.mu.Unlock()
			w.Write(f.blobs[oci.Digest(what)])
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func TestRun(t *testing.T) {
	f, srv := newFakeRegistry(t)
	refs, err := ParseList(strings.NewReader("# images\nr.example/lib/img:1\n\nr.example/lib/img:1 # again\nr.example/lib/img:missing\n"))
	if err != nil || len(refs) != 3 || refs[2].Line != 5 {
		t.Fatalf("ParseList = %v, %v", refs, err)
	}
	var mu sync.Mutex
	phases := map[string]int{}
	res := Run(context.Background(), refs, Options{Base: srv.URL + "/", Client: srv.Client(), Progress: func(e Event) {
		mu.Lock()
		phases[e.Phase]++
		mu.Unlock()
	}})
	for _, i := range []int{0, 1} {
		if res[i].Err != nil || res[i].Blobs != 4 {
			t.Errorf("result %d = %d blobs, %v; want 4 blobs (config twice, two layers), no error", i, res[i].Blobs, res[i].Err)
		}
	}
	if got := res[0].Bytes + res[1].Bytes; got != int64(len("{}")+len("layer-amd64")+len("layer-arm64")) {
		t.Errorf("bytes over both images = %d, want each distinct blob counted once", got)
	}
	for d, n := range f.blobGets {
		if n != 1 {
			t.Errorf("blob %s fetched %d times, want once per run", d, n)
		}
	}
	if want := "manifest missing: 404 Not Found MANIFEST_UNKNOWN: manifest unknown"; res[2].Err == nil || res[2].Err.Error() != want {
		t.Errorf("missing image: err = %v, want %q", res[2].Err, want)
	}
	if phases["image-done"] != 2 || phases["image-failed"] != 1 || phases["blob-done"] != 8 {
		t.Errorf("events = %v", phases)
	}
}

func TestRunOnePlatform(t *testing.T) {
	_, srv := newFakeRegistry(t)
	ref, err := ParseRef("r.example/lib/img:1")
	if err != nil {
		t.Fatal(err)
	}
	res := Run(context.Background(), []Ref{ref}, Options{Base: srv.URL, Client: srv.Client(), Platform: "linux/arm64"})
	if res[0].Err != nil || res[0].Blobs != 2 {
		t.Errorf("linux/arm64: %d blobs, %v; want 2, no error", res[0].Blobs, res[0].Err)
	}
	res = Run(context.Background(), []Ref{ref}, Options{Base: srv.URL, Client: srv.Client(), Platform: "linux/s390x"})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "no manifest for platform linux/s390x") {
		t.Errorf("linux/s390x: err = %v", res[0].Err)
	}
}
