package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/oci"
)

// fillBuf is the copy buffer of a fill.
const fillBuf = 256 << 10

// fillState of a fill.
type fillState int

const (
	filling   fillState = iota
	committed           // verified: every byte may be read (the blob is being, or has been, stored)
	failed
)

// fill is one upstream download of one blob, shared by every reader.
type fill struct {
	d    oci.Digest
	repo string // the repository it was started for (a relay asks for it there)
	mu   sync.Mutex
	cond *sync.Cond

	size    int64 // total from the upstream's Content-Length; -1 unknown
	written int64
	path    string // temp file being written; readers open it
	state   fillState
	err     error
	repos   map[string]bool // repositories to link the blob into
	began   time.Time       // when the fill was created (Fills)
	readers int             // fillReaders open on it (Fills' waiters)
	started chan struct{}   // closed once size and path are known, or on failure
	sized   chan struct{}   // closed once the size is known (here, or from the replica that fills), or on start or failure
	done    chan struct{}   // closed when the fill leaves filling: verified or failed
}

func newFill(d oci.Digest, repo string) *fill {
	f := &fill{d: d, repo: repo, size: -1, repos: map[string]bool{repo: true}, started: make(chan struct{}), sized: make(chan struct{}), done: make(chan struct{})}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// knownSize is the blob's size if known yet, else -1.
func (f *fill) knownSize() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// setSize records the size another replica's fill announced, for HEAD
// requests waiting on this one.
func (f *fill) setSize(n int64) {
	f.mu.Lock()
	if f.size < 0 {
		f.size = n
	}
	closeOnce(f.sized)
	f.mu.Unlock()
}

// closeOnce closes ch unless closed; callers hold the fill's mutex.
func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// fail ends the fill with err; every reader sees it.
func (f *fill) fail(err error) {
	f.mu.Lock()
	ended := f.state == filling
	if ended {
		f.state, f.err = failed, err
	}
	f.mu.Unlock()
	if ended {
		close(f.done)
	}
	f.cond.Broadcast()
	f.markStarted()
}

// verified marks a running fill's bytes as verified: every reader may read
// all of them now. It returns the repositories to link the blob into.
func (f *fill) verified() (repos []string) {
	f.mu.Lock()
	f.state = committed
	f.size = f.written
	for r := range f.repos {
		repos = append(repos, r)
	}
	f.mu.Unlock()
	close(f.done)
	f.cond.Broadcast()
	return repos
}

// start records the size (-1 unknown) and the temp file of a fill whose
// source answered, and lets readers open it.
func (f *fill) start(size int64, path string) {
	f.mu.Lock()
	f.size, f.path = size, path
	f.mu.Unlock()
	f.markStarted()
}

// isVerified reports whether every byte of the fill is there and verified.
func (f *fill) isVerified() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state == committed
}

func (f *fill) markStarted() {
	f.mu.Lock()
	defer f.mu.Unlock()
	closeOnce(f.started)
	closeOnce(f.sized)
}

// errFillFailed is what readers of a failed fill get.
var errFillFailed = errors.New("cache fill failed")

// blobFill returns the fill for d, starting one if none runs, or
// errReadLocal when the blob was committed meanwhile (the caller serves it
// from storage). The caller reads through openFill.
func (s *Store) blobFill(t target, repo string, d oci.Digest) (*fill, error) {
	s.fillsMu.Lock()
	if f, ok := s.fills[d]; ok {
		f.mu.Lock()
		joinable := f.state != failed // a failed fill awaits removal: start afresh
		if joinable {
			f.repos[repo] = true
		}
		f.mu.Unlock()
		if joinable {
			s.fillsMu.Unlock()
			s.m.coalesced.WithLabelValues("blob").Inc()
			return f, nil
		}
	}
	// No fill in the map: any earlier one has finished. If it committed,
	// the blob is there now; never fetch it twice.
	if _, err := s.blobs.Stat(d); err == nil {
		s.fillsMu.Unlock()
		return nil, errReadLocal
	}
	f := newFill(d, repo)
	f.began = s.now()
	s.fills[d] = f
	s.fillsMu.Unlock()
	s.m.misses.WithLabelValues("blob").Inc()
	go s.runFill(t, f)
	return f, nil
}

// runFill downloads the blob once. It is detached from every request: a
// client that leaves does not stop it. A stalled upstream (no bytes for
// upstreamTimeout) fails it. Under a cluster it may instead stream the
// blob from the replica that fetches it (relay.go); the bytes of any
// source go into one writer, each source continuing after the last.
func (s *Store) runFill(t target, f *fill) {
	defer func() {
		s.fillsMu.Lock()
		if s.fills[f.d] == f { // a failed fill may have been replaced already
			delete(s.fills, f.d)
		}
		s.fillsMu.Unlock()
	}()
	// The download is detached from every request. The upstream client
	// bounds it (see Upstream): no answer within upstreamTimeout, or a body
	// that stalls that long, is ErrUpstreamUnavailable; a large blob that
	// keeps flowing may take as long as it needs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The fill's writer: created by the first source that answers. On
	// every failure below, fail comes before Abort: a reader that finds
	// the temp file gone must find the fill failed, not running. Abort
	// after Commit does nothing.
	var w fillWriter
	defer func() {
		if w != nil {
			w.Abort()
		}
	}()
	// Across replicas: one fill per blob at a time. The wait is detached
	// too, and shared by this replica's readers; it ends when the holder
	// commits, fails, or dies (its lease expires after the TTL).
	release, ready := s.coordinate(ctx, s.blobWait(f, &w))
	if ready {
		// Another replica committed it: readers go to storage, or a
		// relayed fill is completed from there.
		s.finishFromStorage(f, w)
		return
	}
	// After the commit (or failure): waiters find the blob stored.
	defer release()
	if f.isVerified() {
		// Relayed completely, then the holder died before storing it.
		if err := s.commitFill(f.d, w, f.linkRepos()); err != nil {
			s.storageErr(err)
		}
		return
	}
	body, size, err := s.up.GetBlob(ctx, t.host, t.repo, f.d)
	if err != nil {
		f.fail(s.upstreamErr(t, string(f.d), err))
		return
	}
	defer body.Close()
	s.publishPeer(f.d)
	s.publishSize(f.d, size)

	if w == nil {
		bw, err := s.blobs.NewWriter(f.d)
		if err != nil {
			f.fail(s.storageErr(err))
			return
		}
		w = bw
		f.start(size, w.Path())
	} else if skip := w.Size(); skip > 0 {
		// Partly relayed from a replica that died: continue after it.
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			f.fail(s.upstreamErr(t, string(f.d), fmt.Errorf("%w: reading the body: %w", ErrUpstreamUnavailable, err)))
			return
		}
	}
	werr, rerr := s.feed(f, w, body, true)
	if werr != nil {
		f.fail(s.storageErr(werr))
		return
	}
	if rerr != nil {
		rerr = fmt.Errorf("%w: reading the body: %w", ErrUpstreamUnavailable, rerr)
		f.fail(s.upstreamErr(t, string(f.d), rerr))
		return
	}
	if size >= 0 && w.Size() != size {
		f.fail(s.upstreamErr(t, string(f.d), fmt.Errorf("body held %d bytes, Content-Length said %d", w.Size(), size)))
		return
	}
	if !w.Verified() {
		s.m.verifyFailures.Inc()
		s.log.Error("upstream blob failed verification; nothing cached", "host", t.host, "repo", t.repo, "digest", f.d, "bytes", w.Size())
		f.fail(s.upstreamErr(t, string(f.d), fmt.Errorf("%w: %d bytes", blobstore.ErrDigestMismatch, w.Size())))
		return
	}
	// Verified: readers may have the last byte now. Durability (fsync,
	// rename, link) follows while the fill stays registered, so nobody
	// fetches the blob again meanwhile; if it fails, the clients still got
	// verified bytes and the blob is simply not cached.
	repos := f.verified()
	if err := s.commitFill(f.d, w, repos); err != nil {
		s.storageErr(err)
		return
	}
	s.kickQuota()
}

// linkRepos are the repositories to link f's blob into.
func (f *fill) linkRepos() (repos []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r := range f.repos {
		repos = append(repos, r)
	}
	return repos
}

// feed appends body to w until its end, making the bytes readable by f's
// readers as they land. werr is a storage failure, rerr a failure of the
// source (nil at its clean end). upstream counts the bytes as fetched from
// the upstream.
//
// Receiving, writing and hashing run as a pipeline of three goroutines
// (this one reads the body) over a ring of at most fillBufs buffers of
// fillChunk bytes: on a host with spare cores a fill goes at the pace of
// its slowest stage, not of their sum. The receiver fills each buffer to
// its end before it wakes the writer, so a fast source moves in writes of
// a whole buffer, one handoff each, however small its socket reads are.
// Bytes of a buffer not yet full are never held longer than fillFlush:
// the writer also wakes on that tick and takes whatever arrived (the
// receiver publishes its progress after every read), so a client
// streaming a fill whose source stalls still gets every byte received.
// A stretch is written, published to the readers, then hashed; the hash
// runs behind the writes, and feed returns only once it has caught up, so
// w.Verified after feed sees every byte. The receiver reuses a buffer once
// the hasher is done with it.
func (s *Store) feed(f *fill, w fillWriter, body io.Reader, upstream bool) (werr, rerr error) {
	p := &fillPipe{
		kick:  make(chan struct{}, 1),
		freed: make(chan struct{}, 1),
		stop:  make(chan struct{}),
		hash:  make(chan fillStretch, fillBufs+1),
	}
	defer p.release()
	hash := w.HashElsewhere() // before the first Write
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); werr = p.write(f, w) }()
	go func() { defer wg.Done(); p.hashAll(hash) }()
	rerr = p.receive(body, func(n int) {
		if upstream {
			s.m.upstreamBytes.Add(float64(n))
		}
	})
	wg.Wait()
	if werr != nil {
		return werr, nil
	}
	return nil, rerr
}

// A fill moves its bytes through a ring of at most fillBufs buffers of
// fillChunk bytes, from a pool shared by every fill (a small blob takes
// one). A buffer not yet full waits at most fillFlush for the writer.
const (
	fillChunk = 1 << 20
	fillBufs  = 4
	fillFlush = 5 * time.Millisecond
)

var fillPool = sync.Pool{New: func() any { b := make([]byte, fillChunk); return &b }}

// fillPipe is the state feed's three goroutines share. Stream offset p
// lives in buffer p/fillChunk, which is ring slot (p/fillChunk)%fillBufs:
// the receiver fills the buffers in turn, each to its end, and takes slot
// k for buffer k only once the hasher is past buffer k-fillBufs.
type fillPipe struct {
	slots [fillBufs]*[]byte // set by the receiver before recvd covers them

	recvd    atomic.Int64  // bytes received (the receiver's progress)
	recvDone atomic.Bool   // set after the receiver's last recvd
	hashed   atomic.Int64  // bytes hashed (the hasher's progress)
	kick     chan struct{} // receiver → writer: a buffer is full, or the end
	freed    chan struct{} // hasher → receiver: a buffer is hashed
	stop     chan struct{} // closed by the writer when a write fails
	hash     chan fillStretch
}

// fillStretch is buf[lo:hi] on its way from the writer to the hasher.
type fillStretch struct {
	buf    *[]byte
	lo, hi int
}

// receive reads body into the ring until its end (nil), a read error, or
// a failed write (nil: the writer reports it). counted sees every read.
func (p *fillPipe) receive(body io.Reader, counted func(int)) (rerr error) {
	defer func() {
		p.recvDone.Store(true)
		p.wake(p.kick)
	}()
	var pos int64 // == p.recvd, owned here
	for {
		k := pos / fillChunk
		off := int(pos % fillChunk)
		slot := &p.slots[k%fillBufs]
		if off == 0 {
			// Buffer k reuses the slot of buffer k-fillBufs: wait until
			// that one is hashed.
			for need := (k - fillBufs + 1) * fillChunk; p.hashed.Load() < need; {
				select {
				case <-p.freed:
				case <-p.stop:
					return nil
				}
			}
			if *slot == nil {
				*slot = fillPool.Get().(*[]byte)
			}
		}
		m, err := body.Read((**slot)[off:])
		if m > 0 {
			counted(m)
			pos += int64(m)
			p.recvd.Store(pos)
			if pos%fillChunk == 0 {
				p.wake(p.kick)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-p.stop:
			return nil
		default:
		}
	}
}

// write appends what the receiver published to w, a buffer at a time when
// they come full, else what there is every fillFlush, and hands each
// written stretch to the hasher. After a failed write it stops the
// receiver and returns the failure.
func (p *fillPipe) write(f *fill, w fillWriter) error {
	defer close(p.hash)
	tick := time.NewTicker(fillFlush)
	defer tick.Stop()
	var pos int64 // bytes written
	for {
		done := p.recvDone.Load() // before recvd: its last value is in then
		end := p.recvd.Load()
		for pos < end {
			k := pos / fillChunk
			lo := int(pos % fillChunk)
			hi := int(min(end-k*fillChunk, fillChunk))
			buf := p.slots[k%fillBufs]
			if _, err := w.Write((*buf)[lo:hi]); err != nil {
				close(p.stop)
				return err
			}
			pos += int64(hi - lo)
			f.mu.Lock()
			f.written += int64(hi - lo)
			f.mu.Unlock()
			f.cond.Broadcast()
			p.hash <- fillStretch{buf, lo, hi}
		}
		if done {
			return nil
		}
		select {
		case <-p.kick:
		case <-tick.C:
		}
	}
}

// hashAll hashes the written stretches in order and tells the receiver
// when a buffer is free again.
func (p *fillPipe) hashAll(h io.Writer) {
	for c := range p.hash {
		h.Write((*c.buf)[c.lo:c.hi])
		p.hashed.Add(int64(c.hi - c.lo))
		if c.hi == fillChunk {
			p.wake(p.freed)
		}
	}
}

// wake signals ch without blocking: one pending signal is enough, the
// other side rereads the shared counters.
func (p *fillPipe) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// release returns the ring's buffers to the pool once every goroutine of
// feed is done with them.
func (p *fillPipe) release() {
	for _, b := range p.slots {
		if b != nil {
			fillPool.Put(b)
		}
	}
}
