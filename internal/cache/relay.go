package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/cluster"
	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/storage"
)

// Streaming a fill from the replica that fetches it (docs/cluster.md,
// "Streaming a fill from the holder"). With cluster.advertise set, the
// holder of a blob's fill lease publishes its advertise URL beside the
// blob's size; a replica that finds the lease busy GETs the blob from the
// holder's registry (header storage.PeerHeader with the cluster's peer
// token) and feeds its own fill with it: its clients stream as the bytes
// arrive, as on the holder. It does not store the blob (the holder does)
// unless the holder dies after the relay completed. On any failure it
// falls back to waiting for the holder's commit or taking over, keeping
// the bytes it relayed (the next source continues after them).
//
// A peer request never starts an upstream fetch nor waits for a lease:
// the holder answers it from its fill under way or from storage, else
// 404, so replicas never ask each other in a loop.

// Relay timings.
const (
	relayDialTimeout   = 2 * time.Second
	relayHeaderTimeout = 10 * time.Second
	// relayStallGrace is added to the upstream timeout to bound a relay
	// body that stalls: the holder's own fill fails after the upstream
	// timeout (which ends the relay), so this only catches a peer that
	// vanished without closing the connection.
	relayStallGrace = 5 * time.Second
)

// msgRelayFailed is logged when a relay from the holder fails.
const msgRelayFailed = "streaming a blob from the replica that fetches it failed: waiting for its commit instead"

func blobPeerKey(d oci.Digest) string { return "fill:blobpeer:" + string(d) }

// newRelayClient is the HTTP client of relays: short connect and header
// timeouts, none on the body (blobs are big; a stall watchdog bounds it),
// no proxy, redirects not followed (a redirect means the blob is stored:
// the fallback reads it from storage). TLS verifies with the system roots.
func newRelayClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: relayDialTimeout}).DialContext,
			TLSHandshakeTimeout:   relayDialTimeout,
			ResponseHeaderTimeout: relayHeaderTimeout,
			DisableCompression:    true,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// relayOn reports whether fills may be streamed between replicas here.
func (s *Store) relayOn() bool { return s.cluster != nil && s.cluster.Advertise() != "" }

// publishPeer tells the other replicas where to stream the blob this
// replica fills from. Best effort.
func (s *Store) publishPeer(d oci.Digest) {
	if !s.relayOn() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sizeWaitBound)
	defer cancel()
	if err := s.cluster.Put(ctx, blobPeerKey(d), []byte(s.cluster.Advertise()), fillSizeTTL); err != nil && !errors.Is(err, cluster.ErrUnavailable) {
		s.log.Debug("publish fill peer", "digest", d, "err", err)
	}
}

// holderURL is the advertise URL of the replica filling d, when it
// published one and it is not this replica's.
func (s *Store) holderURL(d oci.Digest) string {
	ctx, cancel := context.WithTimeout(context.Background(), sizeWaitBound)
	defer cancel()
	b, ok, err := s.cluster.Get(ctx, blobPeerKey(d))
	if err != nil || !ok || string(b) == s.cluster.Advertise() {
		return ""
	}
	return string(b)
}

// peerFill is the fill of d under way here that a peer request may read:
// started (writing), not failed. Nil when there is none: a peer request
// never starts one.
func (s *Store) peerFill(d oci.Digest) *fill {
	s.fillsMu.Lock()
	f := s.fills[d]
	s.fillsMu.Unlock()
	if f == nil {
		return nil
	}
	select {
	case <-f.started:
	default:
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == failed || f.path == "" {
		return nil
	}
	return f
}

// errNotForPeer answers a peer request for a blob this replica neither
// stores nor fills.
var errNotForPeer = fmt.Errorf("%w: not stored and not being fetched by this replica (request from another replica)", storage.ErrBlobUnknown)

// relay streams f's blob from the holder at peer into f (through *w,
// created here when nil). It returns true when the fill is over: verified
// (every byte relayed), or failed for good (a storage error, or relayed
// bytes that do not verify: they may have reached clients). False: the
// relay failed before the end; the caller falls back, f keeps what was
// relayed.
func (s *Store) relay(ctx context.Context, f *fill, w *fillWriter, peer string) bool {
	tok, err := s.cluster.PeerToken(ctx)
	if err != nil {
		return false
	}
	fail := func(why string, err error) bool {
		s.m.relayFailures.Inc()
		s.log.Info(msgRelayFailed, "digest", f.d, "peer", peer, "why", why, "err", err)
		return false
	}
	stall := s.timeout + relayStallGrace
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, peer+"/v2/"+f.repo+"/blobs/"+string(f.d), nil)
	if err != nil {
		return fail("request", err)
	}
	req.Header.Set(storage.PeerHeader, tok)
	resp, err := s.relayClient.Do(req)
	if err != nil {
		return fail("request", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusUnauthorized {
			s.cluster.ForgetPeerToken() // Redis lost it and another replica set a new one
		}
		return fail("status", fmt.Errorf("%s", resp.Status))
	}
	size := resp.ContentLength
	if known := f.knownSize(); known >= 0 && size >= 0 && known != size {
		return fail("size", fmt.Errorf("peer sends %d bytes, the blob has %d", size, known))
	}
	if *w == nil {
		// A local spool, not the storage: the holder stores the blob.
		sp, err := newSpool(s.blobs.TempDir(), f.d)
		if err != nil {
			return fail("spool", err)
		}
		*w = sp
		f.start(size, sp.Path())
	}
	timer := time.AfterFunc(stall, cancel)
	defer timer.Stop()
	body := io.Reader(&stallReader{r: resp.Body, t: timer, d: stall})
	if skip := (*w).Size(); skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			return fail("body", err)
		}
	}
	werr, rerr := s.feed(f, *w, body, false)
	if werr != nil {
		f.fail(s.storageErr(werr))
		return true
	}
	if rerr != nil {
		return fail("body", rerr)
	}
	if !(*w).Verified() {
		s.m.verifyFailures.Inc()
		s.m.relayFailures.Inc()
		s.log.Error("blob streamed from another replica failed verification", "digest", f.d, "peer", peer, "bytes", (*w).Size())
		f.fail(fmt.Errorf("%w: %d bytes from replica %s", blobstore.ErrDigestMismatch, (*w).Size(), peer))
		return true
	}
	f.verified()
	return true
}

// stallReader cancels a relay (through its timer) when no byte came for d.
type stallReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *stallReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

// finishFromStorage completes f after the holder stored the blob: f was
// partly relayed (its readers stream it), so the rest is read from the
// stored blob. Without a relay (w nil) readers simply go to storage.
func (s *Store) finishFromStorage(f *fill, w fillWriter) {
	f.mu.Lock()
	state := f.state
	f.mu.Unlock()
	if w == nil || state == failed {
		f.fail(errReadLocal) // no-op on a failed fill
		return
	}
	if state == committed {
		return
	}
	r, _, err := s.blobs.Open(f.d)
	if err != nil {
		f.fail(errReadLocal)
		return
	}
	defer r.Close()
	if _, err := r.Seek(w.Size(), io.SeekStart); err != nil {
		f.fail(errReadLocal)
		return
	}
	werr, rerr := s.feed(f, w, r, false)
	switch {
	case werr != nil:
		f.fail(s.storageErr(werr))
	case rerr != nil:
		f.fail(fmt.Errorf("cache: reading the stored blob: %w", rerr))
	case !w.Verified():
		s.m.verifyFailures.Inc()
		f.fail(fmt.Errorf("%w: %d bytes (relayed, then read from storage)", blobstore.ErrDigestMismatch, w.Size()))
	default:
		f.verified()
	}
}

// fillWriter is where a fill's bytes go: a blobstore.Writer (to the
// storage, from the upstream) or a spool (a local file, from another
// replica).
type fillWriter interface {
	io.Writer
	// HashElsewhere moves the hashing out of Write (see feed).
	HashElsewhere() io.Writer
	Path() string
	Size() int64
	Verified() bool
	Abort()
}

// spool is a verified local temp file of a relayed fill.
type spool struct {
	f   *os.File
	v   *oci.Verifier
	n   int64
	ext bool // HashElsewhere: the caller hashes
}

func newSpool(dir string, d oci.Digest) (*spool, error) {
	f, err := os.CreateTemp(dir, "relay-*")
	if err != nil {
		return nil, fmt.Errorf("cache: relay spool: %w", err)
	}
	return &spool{f: f, v: oci.NewVerifier(d)}, nil
}

func (s *spool) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if !s.ext {
		s.v.Write(p[:n])
	}
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("cache: relay spool: %w", err)
	}
	return n, nil
}

// HashElsewhere is blobstore.Writer's: Write stops hashing, the caller
// writes every byte to the returned hash.
func (s *spool) HashElsewhere() io.Writer {
	s.ext = true
	return s.v
}

func (s *spool) Path() string   { return s.f.Name() }
func (s *spool) Size() int64    { return s.n }
func (s *spool) Verified() bool { return s.v.Verified() }

// Abort removes the file; readers that opened it keep reading.
func (s *spool) Abort() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// commitFill stores a fill's verified bytes: a storage writer commits; a
// spool (relayed, then this replica took the lease over) is copied into
// the storage.
func (s *Store) commitFill(d oci.Digest, w fillWriter, repos []string) error {
	sp, ok := w.(*spool)
	if !ok {
		return w.(*blobstore.Writer).Commit(repos...)
	}
	src, err := os.Open(sp.Path())
	if err != nil {
		return fmt.Errorf("cache: relay spool: %w", err)
	}
	defer src.Close()
	bw, err := s.blobs.NewWriter(d)
	if err != nil {
		return err
	}
	if _, err := io.Copy(bw, src); err != nil {
		bw.Abort()
		return err
	}
	return bw.Commit(repos...)
}
