package upstream

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// HostHealth is what the client saw of one upstream host since it was
// built: operations (a manifest, blob or referrers request with its
// retries), those that failed, and the last failure. A "not found" answer
// is the upstream working, not a failure.
type HostHealth struct {
	Host        string
	Requests    uint64
	Errors      uint64
	LastError   string
	LastErrorAt time.Time
}

// health keeps HostHealth per host.
type health struct {
	mu    sync.Mutex
	hosts map[string]*HostHealth
}

// record counts one finished operation on host with its error (nil: ok).
func (h *health) record(host string, err error, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hosts == nil {
		h.hosts = map[string]*HostHealth{}
	}
	hh := h.hosts[host]
	if hh == nil {
		hh = &HostHealth{Host: host}
		h.hosts[host] = hh
	}
	hh.Requests++
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidRequest) {
		hh.Errors++
		hh.LastError, hh.LastErrorAt = err.Error(), at
	}
}

// Health reports every upstream host the client has asked, by name.
func (c *Client) Health() []HostHealth {
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	out := make([]HostHealth, 0, len(c.health.hosts))
	for _, hh := range c.health.hosts {
		out = append(out, *hh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}
