//go:build !linux

package verify

import "context"

func (b *battery) icmpEcho(ctx context.Context, host string) (Outcome, string) {
	return NotTested, "the ICMP probe needs Linux"
}
