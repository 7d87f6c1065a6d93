// Package sniff reads the name a client is asking for from the first bytes
// of a connection: the server_name (SNI) of a TLS ClientHello, or the host of
// an HTTP/1.x request head. The transparent gateway uses it on connections
// redirected to it; the name then goes through dnsname.Parse and the policy.
//
// Parse is pure: it looks at a byte prefix and either decides (Result, with
// Kind TLS, HTTP or Unknown) or returns ErrNeedMore, meaning the same prefix
// plus more bytes may decide. It is bounded: a ClientHello must fit in
// MaxClientHello bytes of TLS records and an HTTP head in MaxHTTPHead bytes,
// or Parse returns ErrTooLarge. Malformed input returns an error wrapping
// ErrMalformed (or ErrSSLv2); it never panics.
//
// ReadHead is the one function that does I/O: it reads from an io.Reader
// until Parse decides and returns every byte it read so the caller can replay
// them to the upstream. It sets no deadline; the caller sets one on the
// connection (a slow-loris client is cut by that deadline, not here).
//
// What is visible without decrypting: with Encrypted Client Hello only the
// outer ClientHello is readable, so Name is the outer (public) name and
// Result.ECH is set; the inner, real name is never seen. Chrome also sends a
// GREASE ECH extension when it has no ECH config, so ECH does not prove
// that a hidden name exists. SSLv2-compatible hellos carry no SNI and are
// refused.
//
// Everything here is safe for concurrent use; there is no state.
package sniff
