package admin

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/airlockdev/airlock/internal/basicauth"
)

func TestConfigValidate(t *testing.T) {
	var c Config
	c.SetDefaults()
	if strings.Join(c.Open, ",") != "metrics,healthz,readyz" {
		t.Errorf("default open = %v, want metrics, healthz, readyz", c.Open)
	}
	c.Open = append(c.Open, "console")
	c.Users = append(c.Users, basicauth.User{Name: "ops", PasswordHash: "plain"})
	var got []string
	c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
	if len(got) != 2 || !strings.HasPrefix(got[0], "users[0].passwordHash: must be a bcrypt hash") || !strings.HasPrefix(got[1], `open[3]: unknown endpoint "console": use healthz, metrics, readyz`) {
		t.Errorf("Validate = %q, want the hash and the open name", got)
	}
	for _, tt := range []struct {
		cfg  Config
		warn bool
	}{
		{Config{Listen: "0.0.0.0:9090"}, true},
		{Config{Listen: "127.0.0.1:9090"}, false},
		{Config{Listen: ""}, false},
		{Config{Listen: ":9090", Users: c.Users}, false},
	} {
		if w := tt.cfg.Warnings(); (len(w) > 0) != tt.warn {
			t.Errorf("Warnings(%+v) = %q, want a warning: %v", tt.cfg, w, tt.warn)
		}
	}
}

// Reload swaps the users and open endpoints; the listen address stays.
func TestReloadUsers(t *testing.T) {
	h1, _ := bcrypt.GenerateFromPassword([]byte("one"), bcrypt.MinCost)
	h2, _ := bcrypt.GenerateFromPassword([]byte("two"), bcrypt.MinCost)
	s := New(Config{Listen: "10.0.0.1:9090", Users: []basicauth.User{{Name: "ops", PasswordHash: string(h1)}}, Open: DefaultOpen}, prometheus.NewRegistry(), nil)
	h := s.Handler()
	status := func(path, pass string) int {
		r := httptest.NewRequest("GET", path, nil)
		if pass != "" {
			r.SetBasicAuth("ops", pass)
		}
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, r)
		return rr.Code
	}
	if got := status("/api/overview", "one"); got != 200 {
		t.Errorf("before reload, password one = %d, want 200", got)
	}
	if err := s.Reload(Config{Listen: "127.0.0.1:1", Users: []basicauth.User{{Name: "ops", PasswordHash: string(h2)}}, Open: nil}); err != nil {
		t.Fatal(err)
	}
	if got := status("/api/overview", "one"); got != 401 {
		t.Errorf("after reload, password one = %d, want 401", got)
	}
	if got := status("/api/overview", "two"); got != 200 {
		t.Errorf("after reload, password two = %d, want 200", got)
	}
	if got := status("/metrics", ""); got != 401 {
		t.Errorf("after reload with open [], /metrics = %d, want 401 (the listen address is the running one, not loopback)", got)
	}
}
