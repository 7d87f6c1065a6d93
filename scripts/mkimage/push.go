package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

type pushOptions struct {
	Layout      string
	To          string
	User        string
	PasswordEnv string
	Insecure    bool

	transport http.RoundTripper // tests: dial inside a network namespace; nil: the default
}

// push copies the image index of the layout (its first manifest) to o.To
// and returns its digest, which the registry then serves unchanged.
func push(ctx context.Context, o pushOptions) (v1.Hash, error) {
	if o.To == "" {
		return v1.Hash{}, errors.New("--to is required")
	}
	lp, err := layout.FromPath(o.Layout)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("read the layout %s: %w", o.Layout, err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	im, err := top.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	if len(im.Manifests) != 1 {
		return v1.Hash{}, fmt.Errorf("layout %s holds %d manifests, want the one image index build writes", o.Layout, len(im.Manifests))
	}
	d := im.Manifests[0].Digest
	idx, err := top.ImageIndex(d)
	if err != nil {
		return v1.Hash{}, err
	}
	probe, err := name.ParseReference(o.To)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("--to %q: %w", o.To, err)
	}
	var nopts []name.Option
	if o.Insecure || isLoopback(probe.Context().RegistryStr()) {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(o.To, nopts...)
	if err != nil {
		return v1.Hash{}, err
	}
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	if o.User != "" {
		if o.PasswordEnv == "" || os.Getenv(o.PasswordEnv) == "" {
			return v1.Hash{}, errors.New("--user needs --password-env naming a set variable")
		}
		auth = remote.WithAuth(&authn.Basic{Username: o.User, Password: os.Getenv(o.PasswordEnv)})
	}
	ropts := []remote.Option{remote.WithContext(ctx), auth}
	if o.transport != nil {
		ropts = append(ropts, remote.WithTransport(o.transport))
	}
	if err := remote.WriteIndex(ref, idx, ropts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	return d, nil
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
