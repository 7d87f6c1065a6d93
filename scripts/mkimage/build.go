package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed parts.
const (
	binPath   = "usr/local/bin/airlock"
	nonroot   = 65532
	imageRepo = "https://github.com/airlockdev/airlock"
)

type buildOptions struct {
	Out       string   // OCI layout directory, replaced
	Platforms []string // os/arch
	Version   string   // -X main.version; empty: git describe
	CAFile    string   // CA bundle for /etc/ssl/certs/ca-certificates.crt
	Src       string   // module root
}

type platformDigest struct {
	Platform string
	Digest   v1.Hash
}

type buildResult struct {
	Index     v1.Hash
	Platforms []platformDigest
}

// build compiles one binary per platform and writes the image index as an
// OCI layout in o.Out. stderr gets the progress lines.
func build(ctx context.Context, o buildOptions, stderr io.Writer) (buildResult, error) {
	var res buildResult
	epoch, err := sourceDateEpoch(ctx, o.Src)
	if err != nil {
		return res, err
	}
	if o.Version == "" {
		out, err := gitOut(ctx, o.Src, "describe", "--always", "--dirty", "--abbrev=12")
		if err != nil {
			return res, err
		}
		o.Version = out
	}
	ca, err := os.ReadFile(o.CAFile)
	if err != nil {
		return res, fmt.Errorf("read the CA bundle: %w", err)
	}
	base, err := layerOf(baseFiles(ca), epoch)
	if err != nil {
		return res, err
	}
	work, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		goos, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || goos != "linux" || arch == "" {
			return res, fmt.Errorf("platform %q: want linux/ARCH", p)
		}
		bin := filepath.Join(work, "airlock-"+arch)
		fmt.Fprintf(stderr, "mkimage: go build %s/%s (version %s, SOURCE_DATE_EPOCH %d)\n", goos, arch, o.Version, epoch.Unix())
		if err := goBuild(ctx, o.Src, goos, arch, o.Version, bin); err != nil {
			return res, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return res, err
		}
		app, err := layerOf([]file{{name: binPath, mode: 0o755, data: data}}, epoch)
		if err != nil {
			return res, err
		}
		img, err := imageOf(goos, arch, o.Version, epoch, base, app)
		if err != nil {
			return res, err
		}
		d, err := img.Digest()
		if err != nil {
			return res, err
		}
		res.Platforms = append(res.Platforms, platformDigest{Platform: goos + "/" + arch, Digest: d})
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: goos, Architecture: arch}},
		})
	}
	if res.Index, err = idx.Digest(); err != nil {
		return res, err
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return res, err
	}
	lp, err := layout.Write(o.Out, empty.Index)
	if err != nil {
		return res, fmt.Errorf("write the OCI layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.Version,
	})); err != nil {
		return res, fmt.Errorf("write the OCI layout: %w", err)
	}
	return res, nil
}

// imageOf is one platform's image: the shared base layer, the binary's
// layer and a config with fixed times, the non-root user and no shell.
func imageOf(goos, arch, version string, epoch time.Time, base, app v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: epoch}
	img, err := mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "mkimage: /etc/passwd, /etc/group, CA certificates, /tmp, /home/nonroot"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "mkimage: /" + binPath}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = goos, arch, created
	cf.Config = v1.Config{
		User:       strconv.Itoa(nonroot) + ":" + strconv.Itoa(nonroot),
		Entrypoint: []string{"/" + binPath},
		Cmd:        []string{"serve", "--config", "/etc/airlock/airlock.yaml"},
		WorkingDir: "/home/nonroot",
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
		Labels: map[string]string{
			"org.opencontainers.image.source":  imageRepo,
			"org.opencontainers.image.version": version,
			"org.opencontainers.image.title":   "airlock",
		},
	}
	return mutate.ConfigFile(img, cf)
}

type file struct {
	name     string // without a leading slash
	dir      bool
	mode     int64
	uid, gid int
	data     []byte
}

// baseFiles: the user database (root and nonroot, no login shell), the CA
// bundle and the writable directories.
func baseFiles(ca []byte) []file {
	n := strconv.Itoa(nonroot)
	return []file{
		{name: "etc", dir: true, mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:" + n + ":\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:" + n + ":" + n + ":nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/ssl", dir: true, mode: 0o755},
		{name: "etc/ssl/certs", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home", dir: true, mode: 0o755},
		{name: "home/nonroot", dir: true, mode: 0o700, uid: nonroot, gid: nonroot},
		{name: "tmp", dir: true, mode: 0o1777},
		{name: "usr", dir: true, mode: 0o755},
		{name: "usr/local", dir: true, mode: 0o755},
		{name: "usr/local/bin", dir: true, mode: 0o755},
	}
}

// layerOf writes files into a tar with fixed times and owners and makes a
// gzip layer of it (go-containerregistry's gzip header has no time).
func layerOf(files []file, epoch time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid,
			ModTime: epoch, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(f.data)),
		}
		if f.dir {
			h.Name += "/"
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func goBuild(ctx context.Context, src, goos, arch, version, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X main.version="+version, "-o", out, "./cmd/airlock")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+arch, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s/%s: %v\n%s", goos, arch, err, out)
	}
	return nil
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH, else the last commit's time.
func sourceDateEpoch(ctx context.Context, src string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		out, err := gitOut(ctx, src, "log", "-1", "--format=%ct")
		if err != nil {
			return time.Time{}, err
		}
		s = out
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
