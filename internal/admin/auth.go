package admin

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/basicauth"
)

// The endpoints admin.open may name, and their paths.
var openable = map[string]string{
	"metrics": "/metrics",
	"healthz": "/healthz",
	"readyz":  "/readyz",
}

// DefaultOpen is admin.open's default: what stays open without credentials
// on a listener that is not loopback.
var DefaultOpen = []string{"metrics", "healthz", "readyz"}

// IsLoopback reports whether the admin listen address only takes
// connections from this host: its host is in 127.0.0.0/8, is ::1 or is
// "localhost". An empty host, 0.0.0.0 and :: (every address) are not, nor is
// any other name.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// authState is the reloadable part of the admin config: who may call what.
type authState struct {
	required bool               // Listen is set and not loopback (a Server without Listen is served by tests through Serve)
	open     map[string]bool    // paths served without credentials
	checker  *basicauth.Checker // nil: no users (everything not open is refused)
	listen   string             // for messages
	now      func() time.Time
}

func newAuthState(cfg Config, now func() time.Time) (*authState, error) {
	a := &authState{required: cfg.Listen != "" && !IsLoopback(cfg.Listen), open: map[string]bool{}, listen: cfg.Listen, now: now}
	for _, o := range cfg.Open {
		if p, ok := openable[o]; ok {
			a.open[p] = true
		}
	}
	if a.required && len(cfg.Users) > 0 {
		c, err := basicauth.NewChecker(cfg.Users)
		if err != nil {
			return nil, err
		}
		a.checker = c
	}
	return a, nil
}

// wrap answers 401 for requests that need credentials and lack valid ones.
func (a *authState) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.required || a.open[r.URL.Path] {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="airlock"`)
		if a.checker == nil {
			writeError(w, http.StatusUnauthorized, "the admin listener "+a.listen+" is not loopback and admin.users is empty: set admin.users (name and bcrypt passwordHash, e.g. from `airlock registry hash`) to use the console and the API")
			return
		}
		switch _, res := a.checker.Check(r, a.now()); res {
		case basicauth.OK:
			w.Header().Del("WWW-Authenticate")
			h.ServeHTTP(w, r)
		case basicauth.None:
			writeError(w, http.StatusUnauthorized, "credentials required: sign in with an admin.users account (HTTP Basic)")
		default:
			writeError(w, http.StatusUnauthorized, "wrong user name or password (admin.users)")
		}
	})
}

// validateOpen reports names admin.open does not know.
func validateOpen(open []string, report func(path, msg string)) {
	names := make([]string, 0, len(openable))
	for n := range openable {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, o := range open {
		if _, ok := openable[o]; !ok {
			report("open["+strconv.Itoa(i)+"]", "unknown endpoint "+strconv.Quote(o)+": use "+strings.Join(names, ", "))
		}
	}
}
