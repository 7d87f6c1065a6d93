//go:build !linux

package verify

import "errors"

type netns struct{ name string }

func openNetns(name string) (*netns, error) {
	return nil, errors.New("--netns needs Linux network namespaces")
}

func (n *netns) enter() error { return errors.New("network namespaces need Linux") }
func (n *netns) close() error { return nil }
