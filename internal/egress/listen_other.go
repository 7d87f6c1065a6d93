//go:build !linux

package egress

import "net"

const inheritsKeepAlive = false

func setKeepAlive(int, net.KeepAliveConfig) error { return nil }
