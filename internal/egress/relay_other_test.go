//go:build !linux

package egress

import "time"

const hotIdleForTest = 100 * time.Millisecond
