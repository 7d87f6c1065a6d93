// Command regscale is the tool of bench/regscale.sh: it writes one
// registry's content in two layouts at once (airlock's, internal/blobstore,
// and docker-registry's, distribution 2.x filesystem driver), so both
// registries list and collect the same repositories, tags, manifests and
// blobs; and it pages through a catalog or tag list, timing every page.
//
//	regscale gen -airlock DIR -registry DIR -blobs 100000 -repos 10000 -tags 10000
//	regscale page -url http://127.0.0.1:PORT/v2/_catalog -n 100
//	regscale ready -url http://127.0.0.1:PORT/readyz -pid PID
//
// The content (gen): repository scale/tags holds -tags manifests, one tag
// each (t000001 …); repositories teamNN/appNNNNN (-repos − 1 of them) one
// manifest each, tagged latest. Every manifest is an OCI image manifest
// with its own config blob and layers; -blobs counts every blob file
// (manifests, configs, layers and orphans): a tenth are orphans, in no
// repository and referenced by nothing, which a GC removes. Blobs are
// -size bytes (1 KiB by default), deterministic. With -age every file's
// time is set that far in the past, so a GC's grace period does not
// protect it (otherwise run airlock's GC with --grace 0s).
//
// Writing the files directly (no fsync, no HTTP) keeps 100,000 blobs to a
// few seconds. Airlock's revision record (a JSON object with the media
// type and the manifest body) is the one internal/blobstore writes; the
// bench checks the result through each registry's own listing and GC
// report.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: regscale gen|page|ready [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "page":
		err = page(os.Args[2:])
	case "ready":
		err = ready(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (gen, page, ready)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "regscale:", err)
		os.Exit(1)
	}
}

type blob struct {
	hex  string
	data []byte
}

func newBlob(data []byte) blob {
	h := sha256.Sum256(data)
	return blob{hex: hex.EncodeToString(h[:]), data: data}
}

// filler returns size deterministic bytes for blob i of kind k.
func filler(kind string, i, size int) []byte {
	b := make([]byte, 0, size+sha256.Size)
	seed := sha256.Sum256(fmt.Appendf(nil, "%s-%d", kind, i))
	for len(b) < size {
		b = append(b, seed[:]...)
		seed = sha256.Sum256(seed[:])
	}
	return b[:size]
}

type manifest struct {
	repo, tag string
	config    blob
	layers    []blob
	body      blob
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

func (m *manifest) build() {
	layers := make([]descriptor, len(m.layers))
	for i, l := range m.layers {
		layers[i] = descriptor{mtLayer, "sha256:" + l.hex, len(l.data)}
	}
	body, _ := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{2, mtManifest, descriptor{mtConfig, "sha256:" + m.config.hex, len(m.config.data)}, layers})
	m.body = newBlob(body)
}

type writer struct {
	airlock, registry string
	mtime             time.Time
	mu                sync.Mutex
	err               error
	files             int
}

func (w *writer) file(path string, data []byte) {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			w.fail(err)
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			w.fail(err)
			return
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			w.fail(err)
			return
		}
	}
	if !w.mtime.IsZero() {
		if err := os.Chtimes(path, w.mtime, w.mtime); err != nil {
			w.fail(err)
		}
	}
	w.mu.Lock()
	w.files++
	w.mu.Unlock()
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *writer) blob(b blob) {
	if w.airlock != "" {
		w.file(filepath.Join(w.airlock, "blobs/sha256", b.hex[:2], b.hex), b.data)
	}
	if w.registry != "" {
		w.file(filepath.Join(w.registry, "docker/registry/v2/blobs/sha256", b.hex[:2], b.hex, "data"), b.data)
	}
}

func (w *writer) link(repo string, b blob) {
	if w.airlock != "" {
		w.file(filepath.Join(w.airlock, "repos", repo, "_layers/sha256", b.hex), nil)
	}
	if w.registry != "" {
		w.file(filepath.Join(w.registry, "docker/registry/v2/repositories", repo, "_layers/sha256", b.hex, "link"), []byte("sha256:"+b.hex))
	}
}

func (w *writer) manifest(m *manifest) {
	w.blob(m.config)
	w.link(m.repo, m.config)
	for _, l := range m.layers {
		w.blob(l)
		w.link(m.repo, l)
	}
	w.blob(m.body)
	d := "sha256:" + m.body.hex
	if w.airlock != "" {
		rev, _ := json.Marshal(struct {
			MediaType string `json:"mediaType"`
			Body      []byte `json:"body"`
		}{mtManifest, m.body.data})
		w.file(filepath.Join(w.airlock, "repos", m.repo, "_manifests/revisions/sha256", m.body.hex), rev)
		w.file(filepath.Join(w.airlock, "repos", m.repo, "_manifests/tags", m.tag), []byte(d))
	}
	if w.registry != "" {
		base := filepath.Join(w.registry, "docker/registry/v2/repositories", m.repo, "_manifests")
		w.file(filepath.Join(base, "revisions/sha256", m.body.hex, "link"), []byte(d))
		w.file(filepath.Join(base, "tags", m.tag, "current/link"), []byte(d))
		w.file(filepath.Join(base, "tags", m.tag, "index/sha256", m.body.hex, "link"), []byte(d))
	}
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	airlock := fs.String("airlock", "", "airlock storage root to write (empty: none)")
	registry := fs.String("registry", "", "docker-registry rootdirectory to write (empty: none)")
	nBlobs := fs.Int("blobs", 100000, "blob files in all (manifests, configs, layers, orphans)")
	nRepos := fs.Int("repos", 10000, "repositories")
	nTags := fs.Int("tags", 10000, "tags (and manifests) in repository scale/tags")
	size := fs.Int("size", 1024, "bytes of each config, layer and orphan blob")
	age := fs.Duration("age", 0, "set every file's time this far in the past (0: leave it; run GC with --grace 0s)")
	workers := fs.Int("j", 4, "concurrent writers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nRepos < 1 || *nTags < 1 {
		return errors.New("-repos and -tags must be at least 1")
	}
	nManifests := *nTags + *nRepos - 1
	orphans := *nBlobs / 10
	nLayers := *nBlobs - orphans - 2*nManifests
	if nLayers < nManifests {
		return fmt.Errorf("-blobs %d is too few for %d manifests (each needs a manifest, a config and a layer blob, plus 10%% orphans)", *nBlobs, nManifests)
	}
	start := time.Now()
	w := &writer{airlock: *airlock, registry: *registry}
	if *age > 0 {
		w.mtime = time.Now().Add(-*age)
	}
	for _, d := range []string{*airlock, *registry} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	jobs := make(chan func(), 256)
	var wg sync.WaitGroup
	for range max(*workers, 1) {
		wg.Go(func() {
			for j := range jobs {
				j()
			}
		})
	}
	layer := 0
	for i := range nManifests {
		m := &manifest{repo: "scale/tags", tag: fmt.Sprintf("t%06d", i+1)}
		if i >= *nTags {
			r := i - *nTags + 1
			m.repo, m.tag = fmt.Sprintf("team%02d/app%05d", r%100, r), "latest"
		}
		m.config = newBlob(filler("config", i, *size))
		// Layers round-robin: manifest i gets layers i, i+M, i+2M, …
		for l := i; l < nLayers; l += nManifests {
			m.layers = append(m.layers, newBlob(filler("layer", l, *size)))
			layer++
		}
		m.build()
		jobs <- func() { w.manifest(m) }
	}
	for i := range orphans {
		b := newBlob(filler("orphan", i, *size))
		jobs <- func() { w.blob(b) }
	}
	close(jobs)
	wg.Wait()
	if w.err != nil {
		return w.err
	}
	out, _ := json.Marshal(map[string]any{
		"blobs": *nBlobs, "repositories": *nRepos, "tags": *nTags, "manifests": nManifests,
		"layers": layer, "orphans": orphans, "files": w.files, "seconds": time.Since(start).Seconds(),
	})
	fmt.Println(string(out))
	return nil
}

var nextRE = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// page walks every page of a catalog or tag list from -url with n=-n,
// following the Link header, and prints JSON: pages, entries, and the
// latency of the first page, the median, the 99th percentile, the slowest
// and the last page, in milliseconds, and the total.
func page(args []string) error {
	fs := flag.NewFlagSet("page", flag.ContinueOnError)
	raw := fs.String("url", "", "http://HOST:PORT/v2/_catalog or /v2/<repo>/tags/list")
	n := fs.Int("n", 100, "page size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, err := url.Parse(*raw)
	if err != nil || base.Host == "" {
		return fmt.Errorf("-url %q: want http://HOST:PORT/v2/…", *raw)
	}
	q := base.Query()
	q.Set("n", fmt.Sprint(*n))
	base.RawQuery = q.Encode()
	next := base.String()
	var lat []float64
	entries := 0
	seen := map[string]bool{}
	start := time.Now()
	for next != "" {
		t := time.Now()
		resp, err := http.Get(next)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %.200s", next, resp.Status, body)
		}
		var v struct {
			Repositories []string `json:"repositories"`
			Tags         []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("GET %s: %w", next, err)
		}
		for _, e := range append(v.Repositories, v.Tags...) {
			if seen[e] {
				return fmt.Errorf("GET %s: %q listed twice", next, e)
			}
			seen[e] = true
			entries++
		}
		next = ""
		if m := nextRE.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			u, err := base.Parse(m[1])
			if err != nil {
				return fmt.Errorf("Link %q: %w", m[1], err)
			}
			next = u.String()
		}
	}
	total := time.Since(start)
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	pct := func(p float64) float64 { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	out, _ := json.Marshal(map[string]any{
		"pages": len(lat), "entries": entries, "first_ms": lat[0], "p50_ms": pct(0.5), "p99_ms": pct(0.99),
		"max_ms": sorted[len(sorted)-1], "last_ms": lat[len(lat)-1], "total_s": total.Seconds(),
	})
	fmt.Println(string(out))
	return nil
}

// ready polls -url every 2 ms until it answers 200, failing when -pid
// exits or after -timeout: the bench takes the time from the server's
// start to its first 200 with a resolution far below a curl loop's.
func ready(args []string) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	u := fs.String("url", "", "URL that answers 200 when the server is ready")
	pid := fs.Int("pid", 0, "the server's PID (0: do not watch)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(*u); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if *pid > 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", *pid)); err != nil {
				return fmt.Errorf("process %d exited before %s was ready", *pid, *u)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", *u, *timeout)
}
