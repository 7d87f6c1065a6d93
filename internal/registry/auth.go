package registry

import (
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// authCacheTTL is how long a successful bcrypt check is remembered, so that
// bcrypt (tens of milliseconds by design) is not paid on every request.
const authCacheTTL = 5 * time.Minute

// authCacheMax bounds the cache; when full it is cleared (attackers cannot
// fill it: only successful checks are stored).
const authCacheMax = 4096

// authState is the reloadable part of the configuration.
type authState struct {
	anonymousPull bool
	users         map[string][]byte // name → bcrypt hash
	dummy         []byte            // a bcrypt hash compared against for unknown users

	mu    sync.Mutex
	cache map[[32]byte]time.Time // sha256(name \0 password \0 hash) → expiry
}

func newAuthState(cfg *Config, dummy []byte) *authState {
	a := &authState{anonymousPull: cfg.AllowAnonymousPull(), users: map[string][]byte{}, dummy: dummy, cache: map[[32]byte]time.Time{}}
	for _, u := range cfg.Users {
		a.users[u.Name] = []byte(u.PasswordHash)
	}
	return a
}

// authResult of one request.
type authResult int

const (
	authNone    authResult = iota // no credentials sent
	authOK                        // valid credentials
	authInvalid                   // credentials sent but wrong
)

// check verifies the request's Basic credentials.
func (a *authState) check(r *http.Request, now time.Time) (string, authResult) {
	name, pass, ok := r.BasicAuth()
	if !ok || name == "" && pass == "" {
		// Clients without credentials that were challenged send "Basic Og==".
		return "", authNone
	}
	hash, known := a.users[name]
	if !known {
		// Spend comparable time to not reveal which users exist.
		bcrypt.CompareHashAndPassword(a.dummy, []byte(pass))
		return name, authInvalid
	}
	key := sha256.Sum256([]byte(name + "\x00" + pass + "\x00" + string(hash)))
	a.mu.Lock()
	exp, hit := a.cache[key]
	a.mu.Unlock()
	if hit && now.Before(exp) {
		return name, authOK
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return name, authInvalid
	}
	a.mu.Lock()
	if len(a.cache) >= authCacheMax {
		clear(a.cache)
	}
	a.cache[key] = now.Add(authCacheTTL)
	a.mu.Unlock()
	return name, authOK
}
