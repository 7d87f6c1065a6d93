package registry

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/basicauth"
	"github.com/airlockdev/airlock/internal/storage"
)

// Config is the registry section of airlock.yaml.
type Config struct {
	// Listen is the address of the OCI API ("host:port"). Empty: the registry
	// does not run.
	Listen string `yaml:"listen" config:"listen"`
	// TLS serves HTTPS when both files are set (PEM). Reloaded on SIGHUP.
	TLS TLSConfig `yaml:"tls"`
	// Storage is where blobs, uploads and the repository index live.
	Storage StorageConfig `yaml:"storage"`
	// AnonymousPull lets clients without credentials pull. Default true.
	// Push and delete always need a user.
	AnonymousPull *bool `yaml:"anonymousPull"`
	// Users may authenticate with HTTP Basic. Reloaded on SIGHUP.
	Users []User `yaml:"users"`
	// UploadTTL is how long an upload may stay idle before it is purged.
	// Default 24h; zero means the default.
	UploadTTL time.Duration `yaml:"uploadTTL"`
}

// TLSConfig names a certificate and key in PEM files.
type TLSConfig struct {
	CertFile string `yaml:"certFile" config:"path"`
	KeyFile  string `yaml:"keyFile" config:"path"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// StorageConfig locates the store: a directory (path, or a file:// URL)
// or object storage (an azblob:// or s3:// URL).
type StorageConfig struct {
	// Path of the storage directory (created when missing); shorthand for
	// url: file:///path.
	Path string `yaml:"path" config:"path"`
	// URL of the storage: file:///var/lib/airlock,
	// azblob://CONTAINER[?endpoint=URL][&create=true] or
	// s3://BUCKET?region=REGION[&endpoint=http://HOST:PORT][&create=true].
	// Credentials come from the environment (docs/storage.md).
	URL string `yaml:"url"`
	// Redirect answers blob GETs with a time-limited signed URL of the
	// object storage instead of streaming the blob (for networks where
	// nodes may reach the storage). Object storage only.
	Redirect bool `yaml:"redirect"`
	// RedirectTTL is how long a signed URL stays valid. Default 10m.
	RedirectTTL time.Duration `yaml:"redirectTTL"`
	// Scratch is a local directory for temp files of cache fills in
	// progress on object storage. Default: the system temp directory.
	Scratch string `yaml:"scratch" config:"path"`
	// LocalCache keeps copies of hot blobs on this replica's disk when the
	// content is on object storage (a warm GET then asks the storage
	// nothing). Off unless maxSize is set.
	LocalCache LocalCacheConfig `yaml:"localCache"`
}

// LocalCacheConfig bounds the replica-local copies of hot blobs.
type LocalCacheConfig struct {
	// MaxSize in bytes ("4GiB"); 0: no local copies.
	MaxSize storage.Size `yaml:"maxSize"`
	// Path of the directory; default: scratch/airlock-blob-cache.
	Path string `yaml:"path" config:"path"`
}

// DefaultRedirectTTL applies when RedirectTTL is zero.
const DefaultRedirectTTL = 10 * time.Minute

// StorageSchemes are the URL schemes registry.storage.url accepts.
var StorageSchemes = []string{"file", "azblob", "s3"}

// Location resolves path and url to one URL (file://, azblob:// or s3://).
func (c StorageConfig) Location() (*url.URL, error) {
	if c.URL == "" {
		if c.Path == "" {
			return nil, errors.New("neither storage.path nor storage.url is set")
		}
		abs, err := filepath.Abs(c.Path)
		if err != nil {
			return nil, err
		}
		return &url.URL{Scheme: "file", Path: abs}, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("storage.url: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("storage.url %q: a file URL names a local directory: file:///var/lib/airlock", c.URL)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("storage.url %q: a file URL needs an absolute path: file:///var/lib/airlock", c.URL)
		}
	case "azblob", "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("storage.url %q: name the container or bucket: %s://NAME", c.URL, u.Scheme)
		}
	default:
		return nil, fmt.Errorf("storage.url %q: scheme must be one of %s", c.URL, strings.Join(StorageSchemes, ", "))
	}
	return u, nil
}

// EffectiveRedirectTTL resolves the default of RedirectTTL.
func (c StorageConfig) EffectiveRedirectTTL() time.Duration {
	if c.RedirectTTL <= 0 {
		return DefaultRedirectTTL
	}
	return c.RedirectTTL
}

// User is one account for HTTP Basic authentication (shared with the
// admin listener's admin.users).
type User = basicauth.User

// DefaultUploadTTL applies when UploadTTL is zero.
const DefaultUploadTTL = 24 * time.Hour

// SetDefaults fills what the file left out: anonymousPull true, uploadTTL 24h.
func (c *Config) SetDefaults() {
	if c.AnonymousPull == nil {
		t := true
		c.AnonymousPull = &t
	}
	if c.UploadTTL == 0 {
		c.UploadTTL = DefaultUploadTTL
	}
}

// AllowAnonymousPull resolves the default of AnonymousPull.
func (c *Config) AllowAnonymousPull() bool { return c.AnonymousPull == nil || *c.AnonymousPull }

// EffectiveUploadTTL resolves the default of UploadTTL.
func (c *Config) EffectiveUploadTTL() time.Duration {
	if c.UploadTTL <= 0 {
		return DefaultUploadTTL
	}
	return c.UploadTTL
}

// Validate reports every problem with a path relative to the section. The
// listen address is checked by the config loader (config:"listen").
func (c *Config) Validate(report func(path, msg string)) {
	switch {
	case c.TLS.CertFile != "" && c.TLS.KeyFile == "":
		report("tls.keyFile", "must be set when tls.certFile is set")
	case c.TLS.CertFile == "" && c.TLS.KeyFile != "":
		report("tls.certFile", "must be set when tls.keyFile is set")
	}
	switch st := c.Storage; {
	case st.Path != "" && st.URL != "":
		report("storage.url", "set storage.path or storage.url, not both (path is the shorthand of url: file:///path)")
	case c.Listen != "" && st.Path == "" && st.URL == "":
		report("storage.path", "must be set when the registry listens (a directory for its content), or set storage.url")
	default:
		if st.Path != "" || st.URL != "" {
			if u, err := st.Location(); err != nil {
				report("storage.url", err.Error())
			} else if st.Redirect && u.Scheme == "file" {
				report("storage.redirect", "needs object storage (azblob:// or s3://): a directory has no URL to sign")
			} else if st.LocalCache.MaxSize > 0 && u.Scheme == "file" {
				report("storage.localCache.maxSize", "needs object storage (azblob:// or s3://): content on a directory is already local")
			}
		}
	}
	if c.Storage.RedirectTTL < 0 {
		report("storage.redirectTTL", fmt.Sprintf("must not be negative, got %s", c.Storage.RedirectTTL))
	}
	if c.UploadTTL <= 0 {
		report("uploadTTL", fmt.Sprintf("must be positive, got %s", c.UploadTTL))
	}
	basicauth.ValidateUsers(c.Users, report)
}
