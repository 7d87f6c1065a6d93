package verify

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseHostsTOML(f *testing.F) {
	f.Add([]byte("server = \"https://mcr.microsoft.com\"\n[host.\"http://10.0.0.1:5000/v2/aks\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n"))
	f.Add([]byte("[host.'a'.header]\nx = ['1', \"2\\\"\"]\n# c\nca = [\n'x',\n]\n"))
	f.Add([]byte("[[host]]\n"))
	f.Add([]byte("[host.\"z\".header]\nx = 1\n[host.\"a\"]\nhost.\"b\".ca = 'c'\n"))
	f.Add([]byte("host = { \"z\" = { ca = [\"x\"] }, 'a' = {} }\n[host.\"m\".other]\n[[host.\"n\".list]]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hf, err := parseHostsTOML(b)
		if errors.Is(err, errHostOrder) {
			t.Fatalf("parseHostsTOML(%q) = %v", b, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("parseHostsTOML(%q) error = %q, want it to start with the line", b, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, h := range hf.Hosts {
			if seen[h.URL] {
				t.Errorf("parseHostsTOML(%q): host %q twice", b, h.URL)
			}
			seen[h.URL] = true
			mirrorBase(h) // must not panic on any URL
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	dg := "sha256:" + strings.Repeat("0", 64)
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` + dg + `","size":2}}`))
	f.Add([]byte(`{"manifests":[{"digest":"` + dg + `","platform":{"os":"linux","architecture":"amd64"}}]}`))
	f.Add([]byte(`{"manifests":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err != nil {
			return
		}
		if len(m.Manifests) > 0 && !validDigest(m.pick()) {
			t.Errorf("pick() = %q, not a valid digest", m.pick())
		}
	})
}

func FuzzParseResolverFiles(f *testing.F) {
	f.Add([]byte("nameserver 10.0.0.1\nnameserver fdaa::1\n"), []byte("[Resolve]\nDNS=10.0.0.1:53#x [fdaa::1]:5353 fe80::1%eth0\n"))
	f.Fuzz(func(t *testing.T, conf, dropIn []byte) {
		for _, ap := range append(parseResolvConf(conf), parseResolvedDNS(dropIn)...) {
			if !ap.IsValid() || ap.Addr().Zone() != "" {
				t.Errorf("parsed server %v: want a valid address without zone", ap)
			}
		}
	})
}

func FuzzParseImageRef(f *testing.F) {
	f.Add("mcr.microsoft.com/oss/kubernetes/pause:3.6")
	f.Add("alpine@sha256:" + strings.Repeat("a", 64))
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseImageRef(s)
		if err != nil {
			return
		}
		if r.Host == "" || r.Repo == "" || r.Ref == "" {
			t.Errorf("parseImageRef(%q) = %+v, want every part set", s, r)
		}
	})
}
