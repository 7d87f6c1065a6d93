package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	sha256Hex := strings.Repeat("a", 64)
	sha512Hex := strings.Repeat("b", 128)
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"sha256", "sha256:" + sha256Hex, nil},
		{"sha512", "sha512:" + sha512Hex, nil},
		{"uppercase hex", "sha256:" + strings.Repeat("A", 64), ErrDigestInvalid},
		{"short", "sha256:abc", ErrDigestInvalid},
		{"sha512 with sha256 length", "sha512:" + sha256Hex, ErrDigestInvalid},
		{"no colon", "sha256", ErrDigestInvalid},
		{"empty", "", ErrDigestInvalid},
		{"unknown algorithm", "md5:" + sha256Hex, ErrDigestUnsupported},
		{"bad algorithm grammar", "sha-:" + sha256Hex, ErrDigestInvalid},
		{"traversal", "sha256:../../etc/passwd", ErrDigestInvalid},
		{"too long", "sha256:" + strings.Repeat("a", 300), ErrDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDigest(tt.in)
			if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Errorf("ParseDigest(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestVerifier(t *testing.T) {
	for _, alg := range []Algorithm{SHA256, SHA512} {
		d := alg.FromBytes([]byte("hello"))
		if _, err := ParseDigest(string(d)); err != nil {
			t.Fatalf("ParseDigest(FromBytes) = %v", err)
		}
		v := NewVerifier(d)
		v.Write([]byte("hel"))
		v.Write([]byte("lo"))
		if !v.Verified() {
			t.Errorf("%s verifier over split writes = false, want true", alg)
		}
		v.Write([]byte("!"))
		if v.Verified() {
			t.Errorf("%s verifier after extra byte = true, want false", alg)
		}
	}
}

func TestParseName(t *testing.T) {
	good := []string{"a", "library/ubuntu", "a0/b-c/d__e/f.g", "a--b", strings.Repeat("a", 255)}
	bad := []string{"", "A", "a/", "/a", "a//b", "_a", "a_", "a___b", "a..b", "..", "a/../b", ".a", "a/.b",
		"a%2fb", "a b", strings.Repeat("a", 256), "aks-managed-repository/../../etc"}
	for _, s := range good {
		if _, err := ParseName(s); err != nil {
			t.Errorf("ParseName(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range bad {
		if _, err := ParseName(s); !errors.Is(err, ErrNameInvalid) {
			t.Errorf("ParseName(%q) = %v, want ErrNameInvalid", s, err)
		}
	}
}

func TestParseReference(t *testing.T) {
	d := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		in      string
		wantTag string
		wantDig Digest
		wantErr bool
	}{
		{in: "latest", wantTag: "latest"},
		{in: "_v1.0-rc", wantTag: "_v1.0-rc"},
		{in: d, wantDig: Digest(d)},
		{in: ".hidden", wantErr: true},
		{in: "-x", wantErr: true},
		{in: strings.Repeat("t", 129), wantErr: true},
		{in: "sha256:nothex", wantErr: true},
		{in: "a/b", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		r, err := ParseReference(tt.in)
		if (err != nil) != tt.wantErr || r.Tag != tt.wantTag || r.Digest != tt.wantDig {
			t.Errorf("ParseReference(%q) = %+v, %v; want tag %q digest %q err %v", tt.in, r, err, tt.wantTag, tt.wantDig, tt.wantErr)
		}
	}
}

const (
	cfgDigest   = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	layerDigest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
)

func TestParseManifest(t *testing.T) {
	image := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
	  "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfgDigest + `","size":2},
	  "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + layerDigest + `","size":3}]}`
	artifact := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom",
	  "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + cfgDigest + `","size":2},"layers":[],
	  "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + layerDigest + `","size":3}}`
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
	  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + layerDigest + `","size":3,"platform":{"architecture":"amd64","os":"linux"}}]}`
	tests := []struct {
		name     string
		ct, body string
		wantMT   string
		wantArt  string
		wantRefs int
		wantErr  error
	}{
		{name: "image", ct: MediaTypeImageManifest, body: image, wantMT: MediaTypeImageManifest, wantArt: "application/vnd.oci.image.config.v1+json", wantRefs: 2},
		{name: "image without content type", body: image, wantMT: MediaTypeImageManifest, wantArt: "application/vnd.oci.image.config.v1+json", wantRefs: 2},
		{name: "artifact", ct: MediaTypeImageManifest, body: artifact, wantMT: MediaTypeImageManifest, wantArt: "application/vnd.example.sbom", wantRefs: 1},
		{name: "index", ct: MediaTypeImageIndex + "; charset=utf-8", body: index, wantMT: MediaTypeImageIndex, wantRefs: 1},
		{name: "content type mismatch", ct: MediaTypeImageIndex, body: image, wantErr: ErrManifestInvalid},
		{name: "not json", ct: MediaTypeImageManifest, body: `{"schemaVersion":2`, wantErr: ErrManifestInvalid},
		{name: "schema 1", ct: "application/vnd.docker.distribution.manifest.v1+prettyjws", body: `{"schemaVersion":1}`, wantErr: ErrManifestInvalid},
		{name: "schema version", ct: MediaTypeImageManifest, body: strings.Replace(image, `"schemaVersion":2`, `"schemaVersion":3`, 1), wantErr: ErrManifestInvalid},
		{name: "bad layer digest", ct: MediaTypeImageManifest, body: strings.Replace(image, layerDigest, "sha256:xyz", 1), wantErr: ErrManifestInvalid},
		{name: "negative size", ct: MediaTypeImageManifest, body: strings.Replace(image, `"size":3`, `"size":-3`, 1), wantErr: ErrManifestInvalid},
		{name: "no config", ct: MediaTypeImageManifest, body: `{"schemaVersion":2,"layers":[]}`, wantErr: ErrManifestInvalid},
		{name: "index without manifests", ct: MediaTypeImageIndex, body: `{"schemaVersion":2}`, wantErr: ErrManifestInvalid},
		{name: "unknown type", ct: "application/x-foo", body: image, wantErr: ErrManifestInvalid},
		{name: "wrong field type", ct: MediaTypeImageManifest, body: `{"schemaVersion":"2"}`, wantErr: ErrManifestInvalid},
		{name: "too large", ct: MediaTypeImageManifest, body: `{"a":"` + strings.Repeat("x", MaxManifestSize) + `"}`, wantErr: ErrManifestTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest(tt.ct, []byte(tt.body))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseManifest = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseManifest = %v, want nil", err)
			}
			if m.MediaType != tt.wantMT || m.EffectiveArtifactType() != tt.wantArt || len(m.References()) != tt.wantRefs {
				t.Errorf("ParseManifest = type %q art %q refs %d, want %q %q %d", m.MediaType, m.EffectiveArtifactType(), len(m.References()), tt.wantMT, tt.wantArt, tt.wantRefs)
			}
		})
	}
}

func TestErrorTable(t *testing.T) {
	if got := NewError(CodeManifestUnknown, "").HTTPStatus(); got != 404 {
		t.Errorf("MANIFEST_UNKNOWN status = %d, want 404", got)
	}
	if got := NewError(CodeBlobUploadInvalid, "").WithStatus(416).HTTPStatus(); got != 416 {
		t.Errorf("WithStatus(416) = %d, want 416", got)
	}
	if got := string(Body(NewError(CodeNameUnknown, "x"))); got != `{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}` {
		t.Errorf("Body = %s", got)
	}
}
