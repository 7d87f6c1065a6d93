// Package basicauth holds the accounts of airlock's HTTP Basic
// authentication, shared by the registry (registry.users) and the admin
// listener (admin.users): the User type of the config file, its validation
// (bcrypt hashes only) and a Checker that verifies a request's credentials
// with a short cache of successful bcrypt checks.
//
// Concurrency: a Checker is safe for concurrent use; build a new one to
// change its users.
package basicauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// User is one account for HTTP Basic authentication.
type User struct {
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from
	// `htpasswd -nbB user pass` or `airlock registry hash`.
	PasswordHash string `yaml:"passwordHash"`
}

// ValidateUsers reports every problem of a users list with paths
// "users[i].name" and "users[i].passwordHash": empty or duplicate names,
// names with ':', hashes that are not bcrypt.
func ValidateUsers(users []User, report func(path, msg string)) {
	seen := make(map[string]int)
	for i, u := range users {
		p := "users[" + strconv.Itoa(i) + "]"
		switch first, dup := seen[u.Name]; {
		case u.Name == "":
			report(p+".name", "must be set")
		case dup:
			report(p+".name", fmt.Sprintf("duplicate user %q (also users[%d])", u.Name, first))
		case strings.Contains(u.Name, ":"):
			report(p+".name", "must not contain ':' (HTTP basic auth separates user and password with it)")
		default:
			seen[u.Name] = i
		}
		if msg := CheckHash(u.PasswordHash); msg != "" {
			report(p+".passwordHash", msg)
		}
	}
}

// bcryptAlphabet is the base64 alphabet of bcrypt salts and hashes.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// CheckHash returns what is wrong with a bcrypt hash, or "".
func CheckHash(h string) string {
	const want = "must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from `airlock registry hash`"
	if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
		return want
	}
	if len(h) != 60 {
		return fmt.Sprintf("%s: it has %d characters, not 60", want, len(h))
	}
	if h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' || h[6] != '$' {
		return fmt.Sprintf("%s: the cost after %s must be two digits and a $", want, h[:4])
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return fmt.Sprintf("%s: cost %s is outside %02d to %d", want, h[4:6], bcrypt.MinCost, bcrypt.MaxCost)
	}
	if i := strings.IndexFunc(h[7:], func(r rune) bool { return !strings.ContainsRune(bcryptAlphabet, r) }); i >= 0 {
		return fmt.Sprintf("%s: character %d is not in bcrypt's base64 alphabet", want, 7+i+1)
	}
	return ""
}

// CacheTTL is how long a Checker remembers a successful bcrypt check, so
// that bcrypt (tens of milliseconds by design) is not paid on every request
// of a console that polls and streams.
const CacheTTL = 5 * time.Minute

// cacheMax bounds the cache; when full it is cleared (attackers cannot fill
// it: only successful checks are stored).
const cacheMax = 4096

// Result of one check.
type Result int

// Results.
const (
	None    Result = iota // no credentials sent
	OK                    // valid credentials
	Invalid               // credentials sent but wrong
)

// Checker verifies HTTP Basic credentials against a fixed list of users.
type Checker struct {
	users []User
	dummy []byte // a bcrypt hash compared against for unknown users

	mu    sync.Mutex
	cache map[[32]byte]time.Time // sha256(name \0 password \0 hash) → expiry
}

// NewChecker returns a checker of users. It computes one bcrypt hash (of a
// random password, compared against for unknown names so that the time
// taken does not reveal which names exist).
func NewChecker(users []User) (*Checker, error) {
	var pw [16]byte
	rand.Read(pw[:])
	dummy, err := bcrypt.GenerateFromPassword(pw[:], bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("basicauth: %w", err)
	}
	return &Checker{users: append([]User(nil), users...), dummy: dummy, cache: map[[32]byte]time.Time{}}, nil
}

// Len is the number of users.
func (c *Checker) Len() int { return len(c.users) }

// Check verifies r's Basic credentials at time now and returns the user
// name sent. Names are compared in constant time against every user.
func (c *Checker) Check(r *http.Request, now time.Time) (string, Result) {
	name, pass, ok := r.BasicAuth()
	if !ok || name == "" && pass == "" {
		// Clients without credentials that were challenged send "Basic Og==".
		return "", None
	}
	var hash []byte
	for _, u := range c.users {
		if subtle.ConstantTimeCompare([]byte(u.Name), []byte(name)) == 1 {
			hash = []byte(u.PasswordHash)
		}
	}
	if hash == nil {
		// Spend comparable time to not reveal which users exist.
		bcrypt.CompareHashAndPassword(c.dummy, []byte(pass))
		return name, Invalid
	}
	key := sha256.Sum256([]byte(name + "\x00" + pass + "\x00" + string(hash)))
	c.mu.Lock()
	exp, hit := c.cache[key]
	c.mu.Unlock()
	if hit && now.Before(exp) {
		return name, OK
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return name, Invalid
	}
	c.mu.Lock()
	if len(c.cache) >= cacheMax {
		clear(c.cache)
	}
	c.cache[key] = now.Add(CacheTTL)
	c.mu.Unlock()
	return name, OK
}
