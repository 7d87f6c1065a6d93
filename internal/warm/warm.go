package warm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/ociclient"
)

// Options configure Run.
type Options struct {
	// Base is the registry's URL, e.g. http://127.0.0.1:5000.
	Base   string
	Client *http.Client
	// Username and Password, when set, are sent with HTTP Basic.
	Username, Password string
	// Platform ("os/arch" or "os/arch/variant") limits indexes to one
	// platform; empty: every platform.
	Platform string
	// Concurrency bounds blob downloads in flight. Default 4.
	Concurrency int
	// Progress receives events; it is called from several goroutines.
	Progress func(Event)
}

// Event reports progress.
type Event struct {
	Image  string     // the reference as written
	Blob   oci.Digest // empty for an image-level event
	Done   int64      // bytes received so far (blob)
	Total  int64      // bytes expected (blob)
	Blobs  int        // image: number of blobs found so far
	Phase  string     // "resolve", "blob", "blob-done", "image-done", "image-failed"
	Err    error
	Shared bool // blob already fetched for another image in this run
}

// Result summarises one image.
type Result struct {
	Ref   Ref
	Blobs int
	Bytes int64
	Err   error
}

// Run pulls every reference through the registry at Base, so the cache
// fetches everything from upstream once: manifests (an index's children
// for every platform, or for Platform) and every blob. Blobs shared between
// images are fetched once per run. It returns one result per reference.
func Run(ctx context.Context, refs []Ref, opt Options) []Result {
	w := &warmer{opt: opt, seen: map[oci.Digest]*blobOnce{}}
	if w.opt.Client == nil {
		w.opt.Client = http.DefaultClient
	}
	if w.opt.Concurrency <= 0 {
		w.opt.Concurrency = 4
	}
	if w.opt.Progress == nil {
		w.opt.Progress = func(Event) {}
	}
	w.sem = make(chan struct{}, w.opt.Concurrency)
	results := make([]Result, len(refs))
	api, err := url.Parse(strings.TrimRight(opt.Base, "/") + "/v2")
	if err != nil {
		for i, ref := range refs {
			results[i] = Result{Ref: ref, Err: fmt.Errorf("registry URL: %w", err)}
		}
		return results
	}
	w.api = api
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = w.image(ctx, ref)
		}()
	}
	wg.Wait()
	return results
}

type warmer struct {
	opt  Options
	api  *url.URL
	sem  chan struct{}
	mu   sync.Mutex
	seen map[oci.Digest]*blobOnce
}

type blobOnce struct {
	once sync.Once
	n    int64
	err  error
}

// client is the OCI client for ref: airlock's registry, with ref's host
// as the ns parameter (the registry maps it to its cache rules).
func (w *warmer) client(ref Ref) *ociclient.Client {
	return &ociclient.Client{API: w.api, HTTP: w.opt.Client, Namespace: ref.Host, Username: w.opt.Username, Password: w.opt.Password}
}

func (w *warmer) image(ctx context.Context, ref Ref) Result {
	res := Result{Ref: ref}
	w.opt.Progress(Event{Image: ref.Raw, Phase: "resolve"})
	blobs, err := w.collect(ctx, ref, ref.Ref, 0)
	if err == nil {
		w.opt.Progress(Event{Image: ref.Raw, Phase: "resolve", Blobs: len(blobs)})
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for _, b := range blobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, shared, berr := w.blob(ctx, ref, b)
				mu.Lock()
				defer mu.Unlock()
				res.Blobs++
				if !shared {
					res.Bytes += n
				}
				if berr != nil {
					errs = append(errs, fmt.Errorf("blob %s: %w", b.Digest, berr))
				}
			}()
		}
		wg.Wait()
		err = errors.Join(errs...)
	}
	res.Err = err
	if err != nil {
		w.opt.Progress(Event{Image: ref.Raw, Phase: "image-failed", Err: err})
	} else {
		w.opt.Progress(Event{Image: ref.Raw, Phase: "image-done", Blobs: res.Blobs})
	}
	return res
}

// collect resolves a manifest and returns the blobs to fetch, descending
// into an index.
func (w *warmer) collect(ctx context.Context, ref Ref, r oci.Reference, depth int) ([]oci.Descriptor, error) {
	got, err := w.client(ref).Manifest(ctx, ref.Repo, r.String())
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", r, brief(err))
	}
	m, err := oci.ParseManifest(got.MediaType, got.Body)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", r, err)
	}
	if !m.IsIndex() {
		return m.References(), nil
	}
	if depth > 2 {
		return nil, errors.New("index nested too deep")
	}
	var out []oci.Descriptor
	matched := false
	for _, c := range m.Manifests {
		if !platformMatches(w.opt.Platform, c.Platform) {
			continue
		}
		matched = true
		blobs, err := w.collect(ctx, ref, oci.Reference{Digest: c.Digest}, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, blobs...)
	}
	if !matched {
		return nil, fmt.Errorf("the index has no manifest for platform %s", w.opt.Platform)
	}
	return out, nil
}

func platformMatches(want string, p *oci.Platform) bool {
	if want == "" {
		return true
	}
	if p == nil {
		return false
	}
	have := p.OS + "/" + p.Architecture
	if strings.Count(want, "/") == 2 {
		have += "/" + p.Variant
	}
	return have == want
}
