package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/airlockdev/airlock/internal/oci"
	"github.com/airlockdev/airlock/internal/ociclient"
)

// imageRef is an image reference split the way containerd does.
type imageRef struct {
	Host string // registry host as containerd names its hosts dir ("docker.io")
	Repo string // repository path ("library/alpine")
	Ref  string // tag or digest ("3.6", "sha256:…")
}

// parseImageRef splits "host/repo[:tag][@digest]" (oci.ParseImageRef).
func parseImageRef(s string) (imageRef, error) {
	r, err := oci.ParseImageRef(s)
	if err != nil {
		return imageRef{}, fmt.Errorf("image reference %w", err)
	}
	return imageRef{Host: r.Host, Repo: r.Repo, Ref: r.Ref.String()}, nil
}

// manifest is an image manifest or index as verify reads it.
type manifest struct{ *oci.Manifest }

// parseManifest validates a manifest or index (oci.ParseManifest), which
// checks every digest it names.
func parseManifest(b []byte) (manifest, error) {
	m, err := oci.ParseManifest("", b)
	if err != nil {
		return manifest{&oci.Manifest{}}, err
	}
	return manifest{m}, nil
}

func validDigest(d string) bool {
	_, err := oci.ParseDigest(d)
	return err == nil
}

// pick returns the digest of the index entry for linux/GOARCH, else the
// first entry.
func (m manifest) pick() string {
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return string(d.Digest)
		}
	}
	return string(m.Manifests[0].Digest)
}

// certsDir returns the certs.d directory containerd reads, under root:
// the CRI registry config_path of containerd's config (config, a path on
// the node; "" for DefaultContainerdConfig), its first directory when it
// lists several, else /etc/containerd/certs.d.
func certsDir(root, config string) string {
	if config == "" {
		config = DefaultContainerdConfig
	}
	dir := "/etc/containerd/certs.d"
	if b, err := os.ReadFile(filepath.Join(root, config)); err == nil {
		if c, err := readContainerdCfg(b); err == nil {
			for _, d := range filepath.SplitList(c.configPath) {
				if d != "" {
					dir = d
					break
				}
			}
		}
	}
	return filepath.Join(root, dir)
}

// hostsDir returns the hosts directory containerd reads for host, and
// whether it exists: the host's own, else _default.
func hostsDir(root, config, host string) (string, bool) {
	base := certsDir(root, config)
	for _, d := range []string{host, "_default"} {
		dir := filepath.Join(base, d)
		if _, err := os.Stat(filepath.Join(dir, "hosts.toml")); err == nil {
			return dir, true
		}
	}
	return filepath.Join(base, host), false
}

// mirrorBase returns the API base URL of a [host] entry the way containerd
// builds it: https when no scheme is given; without override_path the
// path gets /v2 appended, with it the path is used as is.
func mirrorBase(h hostEntry) (*url.URL, error) {
	raw := h.URL
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("host %q is not an http(s) URL", h.URL)
	}
	p := path.Clean("/" + u.Path)
	switch {
	case p == "/":
		p = "/v2"
	case !h.OverridePath && !strings.HasSuffix(p, "/v2"):
		p += "/v2"
	}
	u.Path = p
	return u, nil
}

// registryImage is the positive check: fetch the image's manifest and
// HEAD its config blob from the mirror the node's hosts.toml names, never
// from the upstream server.
func (b *battery) registryImage(ctx context.Context) (Outcome, string) {
	ref, err := parseImageRef(b.t.RegistryImage)
	if err != nil {
		return Failed, err.Error()
	}
	dir, ok := hostsDir(b.root, b.containerdConfig, ref.Host)
	if !ok && b.onlyContainersImage() {
		return NotTested, "containerd is not on this node; CRI-O/podman are: the registries-conf-image row pulls the image their way"
	}
	if !ok {
		return Failed, fmt.Sprintf("no %s/hosts.toml: containerd pulls %s from the upstream itself (artifactSource Direct), not through airlock", dir, ref.Host)
	}
	file := filepath.Join(dir, "hosts.toml")
	raw, err := os.ReadFile(file)
	if err != nil {
		return Failed, fmt.Sprintf("reading %s: %v", file, err)
	}
	hf, err := parseHostsTOML(raw)
	if err != nil {
		return Failed, fmt.Sprintf("%s: %v", file, err)
	}
	// containerd tries the host entries in order, then the server. The
	// server is skipped here when it is the real upstream: a pull that
	// reaches it did not come through airlock.
	cands := hf.Hosts
	upstream := isUpstream(hf.Server.URL, ref.Host)
	if !upstream {
		cands = append(cands, hf.Server)
	}
	note := ""
	if upstream && len(hf.Hosts) > 0 {
		note = fmt.Sprintf("; note: server is the upstream (%s): containerd falls back to it whenever the mirror fails", serverOrDefault(hf.Server.URL, ref.Host))
	}
	var tried []string
	for _, h := range cands {
		if !h.has("pull") || (!strings.HasPrefix(ref.Ref, "sha256:") && !h.has("resolve")) {
			continue
		}
		desc, err := b.fetchFromMirror(ctx, dir, h, ref)
		if err == nil {
			return Reachable, fmt.Sprintf("%s (hosts.toml %s)%s", desc, file, note)
		}
		tried = append(tried, fmt.Sprintf("%s: %v", h.URL, err))
	}
	if len(tried) == 0 {
		return Failed, fmt.Sprintf("%s names no mirror with pull and resolve: containerd would go to %s, the upstream itself", file, serverOrDefault(hf.Server.URL, ref.Host))
	}
	return Failed, "no mirror served the image (the upstream server is not tried): " + strings.Join(tried, "; ")
}

// isUpstream reports whether server (a hosts.toml server value, "" for
// containerd's default) is the registry host itself rather than a mirror.
func isUpstream(server, host string) bool {
	if server == "" {
		return true
	}
	u, err := mirrorBase(hostEntry{URL: server})
	if err != nil {
		return false
	}
	return u.Host == host || u.Host == oci.RegistryEndpointHost(host)
}

func serverOrDefault(server, host string) string {
	if server != "" {
		return server
	}
	return "https://" + oci.RegistryEndpointHost(host) + " (containerd's default server)"
}

// fetchFromMirror GETs the manifest (following an index to this
// platform's manifest) and HEADs the config blob.
func (b *battery) fetchFromMirror(ctx context.Context, dir string, h hostEntry, ref imageRef) (string, error) {
	base, err := mirrorBase(h)
	if err != nil {
		return "", err
	}
	client, err := b.mirrorClient(dir, h)
	if err != nil {
		return "", err
	}
	defer client.CloseIdleConnections()
	hdr := http.Header{"User-Agent": {"airlock-verify"}}
	for k, vs := range h.Header {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	oc := &ociclient.Client{API: base, HTTP: client, Namespace: ref.Host, Header: hdr}
	fetchManifest := func(what string) (manifest, string, string, error) {
		got, err := oc.Manifest(ctx, ref.Repo, what)
		if err != nil {
			return manifest{}, "", got.URL, err
		}
		m, err := parseManifest(got.Body)
		if err != nil {
			return m, string(got.Digest), got.URL, fmt.Errorf("%s: %w", got.URL, err)
		}
		return m, string(got.Digest), got.URL, nil
	}
	m, dg, where, err := fetchManifest(ref.Ref)
	if err != nil {
		return "", err
	}
	top := dg
	if len(m.Manifests) > 0 {
		if m, dg, where, err = fetchManifest(m.pick()); err != nil {
			return "", err
		}
		if len(m.Manifests) > 0 {
			return "", fmt.Errorf("%s: an index inside an index", where)
		}
	}
	resp, err := oc.HeadBlob(ctx, ref.Repo, oci.Digest(configDigest(m)))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("manifest %s (%s), config %s (HEAD %s, %d bytes) from %s", shortDigest(top), shortDigest(dg), shortDigest(configDigest(m)), resp.Status, resp.ContentLength, base.Redacted()), nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}

// mirrorClient is an HTTP client for one [host] entry: sockets in the
// probed namespace, names through the node's resolver, no proxy from the
// environment, the entry's CA files (relative to the hosts dir, absolute
// ones under the root) on top of the system roots.
func (b *battery) mirrorClient(dir string, h hostEntry) (*http.Client, error) {
	tc := &tls.Config{InsecureSkipVerify: h.SkipVerify} //nolint:gosec // skip_verify is the operator's choice in hosts.toml
	if len(h.CA) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, ca := range h.CA {
			p := ca
			if filepath.IsAbs(p) {
				p = filepath.Join(b.root, p)
			} else {
				p = filepath.Join(dir, p)
			}
			pem, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("reading the CA file %s: %w", p, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("the CA file %s holds no PEM certificate", p)
			}
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{DialContext: b.e.dial, TLSClientConfig: tc} // Proxy nil: no proxy from the environment
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return nil
		},
	}, nil
}

// configDigest is the config blob's digest of an image manifest.
func configDigest(m manifest) string {
	if m.Config == nil {
		return ""
	}
	return string(m.Config.Digest)
}
