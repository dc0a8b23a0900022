//go:build !linux

package subnet

import (
	"context"
	"errors"
	"log/slog"
)

var errNotLinux = errors.New("gateway: the agent needs Linux (a kernel TUN, policy routing and netfilter)")

// Run fails: the agent needs Linux.
func Run(ctx context.Context, cfg Config) error { return errNotLinux }

// Cleanup does nothing off Linux.
func Cleanup(stateDir string, logger *slog.Logger) error { return nil }
