package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// watchFile polls path every interval and sends on the returned channel
// when its content changes (a write in place, or an editor's or config
// manager's rename over it). Polling, not inotify: it sees a rename of the
// file or of a directory above it (Kubernetes ConfigMap volumes swap a
// symlink) and needs no descriptor per directory. A file that cannot be
// read (mid-rename, deleted) is skipped until it can. The channel is
// closed when ctx ends.
func watchFile(ctx context.Context, path string, interval time.Duration) <-chan struct{} {
	changed := make(chan struct{}, 1)
	sum := func() []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		s := sha256.Sum256(b)
		return s[:]
	}
	last := sum()
	go func() {
		defer close(changed)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cur := sum()
			if cur == nil || bytes.Equal(cur, last) {
				continue
			}
			last = cur
			select {
			case changed <- struct{}{}:
			default: // a reload is already pending; it reads the newest file
			}
		}
	}()
	return changed
}
