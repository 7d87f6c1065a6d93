package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Media types of the seeded images.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// seededImage is what seed reports for one image.
type seededImage struct {
	Repo           string       `json:"repo"`
	Tag            string       `json:"tag"`
	ManifestDigest string       `json:"manifest_digest"`
	Blobs          []descriptor `json:"blobs"` // config first, then the layers
	Bytes          int64        `json:"bytes"` // config and layers
}

type seedResult struct {
	Image seededImage `json:"image"`
	Big   seededImage `json:"big"`
}

// randomBlob is size bytes of incompressible data, the same for the same
// seed: a ChaCha8 stream, generated again for every read pass.
type randomBlob struct {
	seed uint64
	size int64
}

func (b randomBlob) reader() io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], b.seed)
	copy(key[8:], "airlock-bench-cache")
	return io.LimitReader(rand.NewChaCha8(key), b.size)
}

func (b randomBlob) digest() (string, error) {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, b.reader(), make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func runSeed(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	reg := fs.String("registry", "", "base URL of the registry to push to (http://127.0.0.1:PORT)")
	layers := fs.Int("layers", 3, "layers of bench/img:v1")
	layerMiB := fs.Int64("layer-mib", 64, "size of each layer of bench/img:v1, MiB")
	bigMiB := fs.Int64("big-mib", 256, "size of the one layer of bench/blob:v1, MiB")
	seed := fs.Uint64("seed", 1, "seed of the random layer contents")
	_ = fs.Parse(args)
	if *reg == "" {
		return fmt.Errorf("-registry is required")
	}
	p := &pusher{base: strings.TrimRight(*reg, "/"), hc: &http.Client{Timeout: 5 * time.Minute}}
	var blobs []randomBlob
	for i := range *layers {
		blobs = append(blobs, randomBlob{seed: *seed*1000 + uint64(i), size: *layerMiB << 20})
	}
	img, err := p.pushImage("bench/img", "v1", blobs)
	if err != nil {
		return err
	}
	big, err := p.pushImage("bench/blob", "v1", []randomBlob{{seed: *seed*1000 + 999, size: *bigMiB << 20}})
	if err != nil {
		return err
	}
	return emit(seedResult{Image: img, Big: big})
}

type pusher struct {
	base string
	hc   *http.Client
}

// pushImage uploads the layers, a config naming them, and a manifest tagged tag.
func (p *pusher) pushImage(repo, tag string, layers []randomBlob) (seededImage, error) {
	m := manifest{SchemaVersion: 2, MediaType: mediaManifest}
	var diffIDs []string
	for _, l := range layers {
		d, err := l.digest()
		if err != nil {
			return seededImage{}, err
		}
		if err := p.pushBlob(repo, d, l.size, l.reader); err != nil {
			return seededImage{}, err
		}
		m.Layers = append(m.Layers, descriptor{MediaType: mediaLayer, Digest: d, Size: l.size})
		diffIDs = append(diffIDs, d)
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return seededImage{}, err
	}
	cd := sha(cfg)
	if err := p.pushBlob(repo, cd, int64(len(cfg)), func() io.Reader { return strings.NewReader(string(cfg)) }); err != nil {
		return seededImage{}, err
	}
	m.Config = descriptor{MediaType: mediaConfig, Digest: cd, Size: int64(len(cfg))}
	mb, err := json.Marshal(m)
	if err != nil {
		return seededImage{}, err
	}
	req, err := http.NewRequest(http.MethodPut, p.base+"/v2/"+repo+"/manifests/"+tag, strings.NewReader(string(mb)))
	if err != nil {
		return seededImage{}, err
	}
	req.Header.Set("Content-Type", mediaManifest)
	if err := p.do(req, http.StatusCreated); err != nil {
		return seededImage{}, fmt.Errorf("put manifest %s:%s: %w", repo, tag, err)
	}
	out := seededImage{Repo: repo, Tag: tag, ManifestDigest: sha(mb), Blobs: append([]descriptor{m.Config}, m.Layers...)}
	for _, b := range out.Blobs {
		out.Bytes += b.Size
	}
	return out, nil
}

// pushBlob is a monolithic upload: POST, then PUT with the body and digest.
func (p *pusher) pushBlob(repo, digest string, size int64, body func() io.Reader) error {
	resp, err := p.hc.Post(p.base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return fmt.Errorf("start upload to %s: %w", repo, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload to %s: status %d", repo, resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("start upload to %s: %w", repo, err)
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPut, loc.String(), body())
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := p.do(req, http.StatusCreated); err != nil {
		return fmt.Errorf("upload %s to %s: %w", digest, repo, err)
	}
	return nil
}

func (p *pusher) do(req *http.Request, want int) error {
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d: %s", resp.StatusCode, want, strings.TrimSpace(string(b)))
	}
	return nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// blobURL is base/v2/repo/blobs/digest with an optional ns query.
func blobURL(base, repo, digest, ns string) string {
	return withNS(base+"/v2/"+repo+"/blobs/"+digest, ns)
}

func manifestURL(base, repo, ref, ns string) string {
	return withNS(base+"/v2/"+repo+"/manifests/"+ref, ns)
}

func withNS(u, ns string) string {
	if ns == "" {
		return u
	}
	return u + "?ns=" + url.QueryEscape(ns)
}
