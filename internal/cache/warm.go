package cache

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/airlockdev/airlock/internal/oci"
)

// WarmRef is one line of a warm list: an image reference as users write it
// (mcr.microsoft.com/oss/kubernetes/pause:3.6, ubuntu:22.04, host/repo@sha256:…).
type WarmRef struct {
	Line int
	Raw  string
	Host string
	Repo string
	Ref  oci.Reference
}

func (r WarmRef) String() string { return r.Raw }

// ParseWarmList reads references, one per line; blank lines and # comments
// are skipped. Every malformed line is reported with its number.
func ParseWarmList(r io.Reader) ([]WarmRef, error) {
	var out []WarmRef
	var errs []error
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		ref, err := ParseImageRef(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		ref.Line = n
		out = append(out, ref)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// ParseImageRef parses one reference of a warm list (oci.ParseImageRef).
func ParseImageRef(s string) (WarmRef, error) {
	r, err := oci.ParseImageRef(s)
	return WarmRef{Raw: s, Host: r.Host, Repo: r.Repo, Ref: r.Ref}, err
}

// WarmOptions configure Warm.
type WarmOptions struct {
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
	Progress func(WarmEvent)
}

// WarmEvent reports progress.
type WarmEvent struct {
	Image  string     // the reference as written
	Blob   oci.Digest // empty for an image-level event
	Done   int64      // bytes received so far (blob)
	Total  int64      // bytes expected (blob)
	Blobs  int        // image: number of blobs found so far
	Phase  string     // "resolve", "blob", "blob-done", "image-done", "image-failed"
	Err    error
	Shared bool // blob already fetched for another image in this run
}

// WarmResult summarises one image.
type WarmResult struct {
	Ref   WarmRef
	Blobs int
	Bytes int64
	Err   error
}

// Warm pulls every reference through the registry at Base, so the cache
// fetches everything from upstream once: manifests (an index's children
// for every platform, or for Platform) and every blob. Blobs shared between
// images are fetched once per run. It returns one result per reference.
func Warm(ctx context.Context, refs []WarmRef, opt WarmOptions) []WarmResult {
	w := &warmer{opt: opt, seen: map[oci.Digest]*blobOnce{}}
	if w.opt.Client == nil {
		w.opt.Client = http.DefaultClient
	}
	if w.opt.Concurrency <= 0 {
		w.opt.Concurrency = 4
	}
	if w.opt.Progress == nil {
		w.opt.Progress = func(WarmEvent) {}
	}
	w.sem = make(chan struct{}, w.opt.Concurrency)
	results := make([]WarmResult, len(refs))
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
	opt  WarmOptions
	sem  chan struct{}
	mu   sync.Mutex
	seen map[oci.Digest]*blobOnce
}

type blobOnce struct {
	once sync.Once
	n    int64
	err  error
}

func (w *warmer) image(ctx context.Context, ref WarmRef) WarmResult {
	res := WarmResult{Ref: ref}
	w.opt.Progress(WarmEvent{Image: ref.Raw, Phase: "resolve"})
	blobs, err := w.collect(ctx, ref, ref.Ref, 0)
	if err == nil {
		w.opt.Progress(WarmEvent{Image: ref.Raw, Phase: "resolve", Blobs: len(blobs)})
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
		w.opt.Progress(WarmEvent{Image: ref.Raw, Phase: "image-failed", Err: err})
	} else {
		w.opt.Progress(WarmEvent{Image: ref.Raw, Phase: "image-done", Blobs: res.Blobs})
	}
	return res
}

// collect resolves a manifest and returns the blobs to fetch, descending
// into an index.
func (w *warmer) collect(ctx context.Context, ref WarmRef, r oci.Reference, depth int) ([]oci.Descriptor, error) {
	body, mt, err := w.manifest(ctx, ref, r)
	if err != nil {
		return nil, err
	}
	m, err := oci.ParseManifest(mt, body)
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

func (w *warmer) url(ref WarmRef, kind, arg string) string {
	return strings.TrimRight(w.opt.Base, "/") + "/v2/" + ref.Repo + "/" + kind + "/" + arg + "?ns=" + url.QueryEscape(ref.Host)
}

func (w *warmer) get(ctx context.Context, u string, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if w.opt.Username != "" {
		req.SetBasicAuth(w.opt.Username, w.opt.Password)
	}
	resp, err := w.opt.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, registryError(resp)
	}
	return resp, nil
}

// registryError turns an error response into the registry's message.
func registryError(resp *http.Response) error {
	var doc struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &doc) == nil && len(doc.Errors) > 0 {
		return fmt.Errorf("%s %s: %s", resp.Status, doc.Errors[0].Code, doc.Errors[0].Message)
	}
	return fmt.Errorf("%s", resp.Status)
}

func (w *warmer) manifest(ctx context.Context, ref WarmRef, r oci.Reference) ([]byte, string, error) {
	resp, err := w.get(ctx, w.url(ref, "manifests", r.String()), oci.ManifestAccept)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", r, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", r, err)
	}
	if r.IsDigest() && r.Digest.Algorithm().FromBytes(body) != r.Digest {
		return nil, "", fmt.Errorf("manifest %s: content does not match its digest", r)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// blob fetches one blob (once per run) and verifies it.
func (w *warmer) blob(ctx context.Context, ref WarmRef, b oci.Descriptor) (int64, bool, error) {
	w.mu.Lock()
	bo, shared := w.seen[b.Digest]
	if !shared {
		bo = &blobOnce{}
		w.seen[b.Digest] = bo
	}
	w.mu.Unlock()
	bo.once.Do(func() {
		select {
		case w.sem <- struct{}{}:
		case <-ctx.Done():
			bo.err = ctx.Err()
			return
		}
		defer func() { <-w.sem }()
		bo.n, bo.err = w.fetchBlob(ctx, ref, b)
	})
	ev := WarmEvent{Image: ref.Raw, Blob: b.Digest, Done: bo.n, Total: b.Size, Phase: "blob-done", Shared: shared, Err: bo.err}
	w.opt.Progress(ev)
	return bo.n, shared, bo.err
}

func (w *warmer) fetchBlob(ctx context.Context, ref WarmRef, b oci.Descriptor) (int64, error) {
	if _, err := oci.ParseDigest(string(b.Digest)); err != nil {
		return 0, err
	}
	resp, err := w.get(ctx, w.url(ref, "blobs", string(b.Digest)), "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	v := oci.NewVerifier(b.Digest)
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			v.Write(buf[:k])
			n += int64(k)
			w.opt.Progress(WarmEvent{Image: ref.Raw, Blob: b.Digest, Done: n, Total: b.Size, Phase: "blob"})
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, fmt.Errorf("after %d bytes: %w", n, rerr)
		}
	}
	if !v.Verified() {
		return n, errors.New("content does not match its digest")
	}
	return n, nil
}

// IsTerminal reports whether f is a terminal (for the live display).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
