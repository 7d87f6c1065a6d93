package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Algorithm names a digest algorithm registered by the OCI image spec.
type Algorithm string

// The algorithms airlock accepts end to end.
const (
	SHA256 Algorithm = "sha256"
	SHA512 Algorithm = "sha512"
)

// Canonical is the algorithm used when the client does not choose one
// (for example a manifest pushed by tag).
const Canonical = SHA256

// hexLen is the length of the lowercase hex encoding per algorithm.
func (a Algorithm) hexLen() int {
	switch a {
	case SHA256:
		return 64
	case SHA512:
		return 128
	}
	return 0
}

// Available reports whether airlock can compute this algorithm.
func (a Algorithm) Available() bool { return a.hexLen() > 0 }

// New returns a fresh hash for the algorithm. It panics for an algorithm
// that is not Available; callers get algorithms from a parsed Digest.
func (a Algorithm) New() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	panic("oci: hash of unavailable algorithm " + string(a))
}

// FromBytes digests b with the algorithm.
func (a Algorithm) FromBytes(b []byte) Digest {
	h := a.New()
	h.Write(b)
	return a.FromHash(h)
}

// FromHash builds a digest from a hash of this algorithm.
func (a Algorithm) FromHash(h hash.Hash) Digest {
	return Digest(fmt.Sprintf("%s:%x", a, h.Sum(nil)))
}

// Digest is a content identifier "algorithm:hex". The zero value is invalid.
// A Digest obtained from ParseDigest is safe to use as a file name component:
// its algorithm is one of the Available ones and its hex part is lowercase hex
// of the right length.
type Digest string

// Errors returned by ParseDigest.
var (
	ErrDigestInvalid     = errors.New("invalid digest")
	ErrDigestUnsupported = errors.New("unsupported digest algorithm")
)

// maxDigestLen bounds what is even looked at; the grammar allows longer
// algorithm names but no registered algorithm comes close.
const maxDigestLen = 256

// ParseDigest validates s against the OCI digest grammar
// (algorithm ":" encoded) and accepts only sha256 and sha512 with their
// exact lowercase hex lengths.
func ParseDigest(s string) (Digest, error) {
	if len(s) > maxDigestLen {
		return "", fmt.Errorf("%w: longer than %d characters", ErrDigestInvalid, maxDigestLen)
	}
	alg, enc, ok := strings.Cut(s, ":")
	if !ok || alg == "" || enc == "" {
		return "", fmt.Errorf("%w: %q is not algorithm:hex", ErrDigestInvalid, s)
	}
	if !validAlgorithmGrammar(alg) {
		return "", fmt.Errorf("%w: bad algorithm %q", ErrDigestInvalid, alg)
	}
	a := Algorithm(alg)
	if !a.Available() {
		return "", fmt.Errorf("%w: %q", ErrDigestUnsupported, alg)
	}
	if len(enc) != a.hexLen() {
		return "", fmt.Errorf("%w: %s needs %d hex characters, got %d", ErrDigestInvalid, alg, a.hexLen(), len(enc))
	}
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%w: %q is not lowercase hex", ErrDigestInvalid, enc)
		}
	}
	return Digest(s), nil
}

// validAlgorithmGrammar checks algorithm-component(algorithm-separator algorithm-component)*
// with components [a-z0-9]+ and separators [+._-].
func validAlgorithmGrammar(s string) bool {
	prevSep := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			prevSep = false
		case c == '+' || c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// Algorithm returns the algorithm part.
func (d Digest) Algorithm() Algorithm {
	alg, _, _ := strings.Cut(string(d), ":")
	return Algorithm(alg)
}

// Hex returns the encoded part.
func (d Digest) Hex() string {
	_, enc, _ := strings.Cut(string(d), ":")
	return enc
}

func (d Digest) String() string { return string(d) }

// Verifier hashes bytes written to it and reports whether they match d.
type Verifier struct {
	d Digest
	h hash.Hash
}

// NewVerifier returns a verifier for d. d must come from ParseDigest.
func NewVerifier(d Digest) *Verifier { return &Verifier{d: d, h: d.Algorithm().New()} }

func (v *Verifier) Write(p []byte) (int, error) { return v.h.Write(p) }

// Verified reports whether everything written so far hashes to the digest.
func (v *Verifier) Verified() bool { return v.d.Algorithm().FromHash(v.h) == v.d }
