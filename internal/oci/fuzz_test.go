package oci

import (
	"strings"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	f.Add(MediaTypeImageManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"`+cfgDigest+`","size":1},"layers":[]}`))
	f.Add(MediaTypeImageIndex, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"`+layerDigest+`","size":1}]}`))
	f.Add("", []byte(`{"schemaVersion":2,"subject":{"data":"aGk="}}`))
	f.Add("application/json", []byte(`[]`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := ParseManifest(ct, body)
		if err != nil {
			return
		}
		if !IsManifestMediaType(m.MediaType) {
			t.Fatalf("accepted manifest with media type %q", m.MediaType)
		}
		for _, d := range append(m.References(), subjectOf(m)...) {
			if _, err := ParseDigest(string(d.Digest)); err != nil {
				t.Fatalf("accepted descriptor with digest %q: %v", d.Digest, err)
			}
		}
	})
}

func subjectOf(m *Manifest) []Descriptor {
	if m.Subject == nil {
		return nil
	}
	return []Descriptor{*m.Subject}
}

func FuzzParseNameAndReference(f *testing.F) {
	for _, s := range []string{"library/ubuntu", "a/../b", "sha256:" + layerDigest[7:], "v1.0", "A", "a__b--c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if name, err := ParseName(s); err == nil {
			for _, bad := range []string{"..", "//", "\x00", "\\"} {
				if strings.Contains(name, bad) {
					t.Fatalf("ParseName accepted %q", s)
				}
			}
			if name[0] == '.' || name[0] == '_' || name[0] == '/' {
				t.Fatalf("ParseName accepted %q", s)
			}
		}
		if r, err := ParseReference(s); err == nil {
			if r.IsDigest() == (r.Tag != "") {
				t.Fatalf("ParseReference(%q) = %+v: exactly one of tag or digest", s, r)
			}
			if strings.Contains(s, "/") {
				t.Fatalf("ParseReference accepted %q", s)
			}
		}
	})
}
