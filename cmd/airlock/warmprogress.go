package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/warm"
)

// progressDisplay renders warm.Events: on a terminal, a live block redrawn in
// place (one line per image, one per blob in flight); otherwise one line per
// finished blob and image, for logs.
type progressDisplay struct {
	w    io.Writer
	live bool

	mu     sync.Mutex
	images map[string]*imageProgress
	order  []string
	drawn  int // lines drawn last time (live)
}

type imageProgress struct {
	blobs   int
	done    int
	bytes   int64
	total   int64
	state   string // resolving, pulling, done, failed
	err     error
	active  map[oci.Digest][2]int64 // done, total
	started time.Time
}

// newProgressDisplay writes to w; live selects the redrawn display.
func newProgressDisplay(w io.Writer, live bool) *progressDisplay {
	return &progressDisplay{w: w, live: live, images: map[string]*imageProgress{}}
}

// Event records one event (safe from several goroutines).
func (p *progressDisplay) Event(e warm.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	im, ok := p.images[e.Image]
	if !ok {
		im = &imageProgress{state: "resolving", active: map[oci.Digest][2]int64{}, started: time.Now()}
		p.images[e.Image] = im
		p.order = append(p.order, e.Image)
	}
	switch e.Phase {
	case "resolve":
		if e.Blobs > 0 {
			im.blobs, im.state = e.Blobs, "pulling"
		}
	case "blob":
		im.active[e.Blob] = [2]int64{e.Done, e.Total}
	case "blob-done":
		delete(im.active, e.Blob)
		im.done++
		im.total += e.Total
		if !e.Shared {
			im.bytes += e.Done
		}
		if !p.live {
			status := "ok"
			switch {
			case e.Err != nil:
				status = "FAILED: " + e.Err.Error()
			case e.Shared:
				status = "ok (fetched for another image)"
			}
			fmt.Fprintf(p.w, "%s  %s  %s  %s\n", e.Image, shortBlob(e.Blob), formatBytes(e.Done), status)
		}
	case "image-done":
		im.state = "done"
		if !p.live {
			fmt.Fprintf(p.w, "%s  done: %d blobs, %s in %s\n", e.Image, im.done, formatBytes(im.bytes), time.Since(im.started).Round(time.Millisecond))
		}
	case "image-failed":
		im.state, im.err = "failed", e.Err
		if !p.live {
			fmt.Fprintf(p.w, "%s  FAILED: %v\n", e.Image, e.Err)
		}
	}
}

// Run redraws the live display until ctx ends, then draws it a last time.
func (p *progressDisplay) Run(ctx context.Context) {
	if !p.live {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		p.draw()
		select {
		case <-ctx.Done():
			p.draw()
			return
		case <-t.C:
		}
	}
}

func (p *progressDisplay) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	lines := 0
	for _, name := range p.order {
		im := p.images[name]
		var status string
		switch im.state {
		case "resolving":
			status = "resolving manifests"
		case "pulling":
			status = fmt.Sprintf("%d/%d blobs  %s", im.done, im.blobs, formatBytes(im.bytes+activeBytes(im)))
		case "done":
			status = fmt.Sprintf("done  %d blobs  %s", im.done, formatBytes(im.bytes))
		case "failed":
			status = "FAILED: " + firstLine(im.err)
		}
		fmt.Fprintf(&b, "\x1b[2K%-60s %s\n", name, status)
		lines++
		digests := make([]oci.Digest, 0, len(im.active))
		for d := range im.active {
			digests = append(digests, d)
		}
		sort.Slice(digests, func(i, j int) bool { return digests[i] < digests[j] })
		for _, d := range digests {
			a := im.active[d]
			fmt.Fprintf(&b, "\x1b[2K    %s  %s / %s\n", shortBlob(d), formatBytes(a[0]), formatBytes(a[1]))
			lines++
		}
	}
	for i := lines; i < p.drawn; i++ { // clear what the last frame had below
		b.WriteString("\x1b[2K\n")
		lines++
	}
	p.drawn = lines
	io.WriteString(p.w, b.String())
}

func activeBytes(im *imageProgress) int64 {
	var n int64
	for _, a := range im.active {
		n += a[0]
	}
	return n
}

func shortBlob(d oci.Digest) string {
	if len(d) > 19 {
		return string(d[:19])
	}
	return string(d)
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// isTerminal reports whether f is a terminal (for the live display).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
