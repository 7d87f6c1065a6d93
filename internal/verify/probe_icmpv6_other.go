//go:build !linux

package verify

import (
	"context"
	"errors"
	"log/slog"
)

func (b *battery) icmpv6OffLink(ctx context.Context, k icmpv6Kind) (Outcome, string) {
	return NotTested, "the ICMPv6 probes need Linux"
}

// ReflectICMPv6 needs Linux (raw ICMPv6 sockets).
func ReflectICMPv6(ctx context.Context, log *slog.Logger) error {
	return errors.New("the ICMPv6 reflector needs Linux")
}

// Reflector needs Linux.
type Reflector struct{}

// OpenReflector needs Linux (raw ICMPv6 sockets).
func OpenReflector() (*Reflector, error) { return nil, errors.New("the ICMPv6 reflector needs Linux") }

// Serve needs Linux.
func (r *Reflector) Serve(ctx context.Context, log *slog.Logger) error {
	return errors.New("the ICMPv6 reflector needs Linux")
}
