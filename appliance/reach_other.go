//go:build !linux

package appliance

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// DetectReachability needs Linux's netlink.
func DetectReachability(netip.Addr) (Reachability, error) {
	return Reachability{}, errors.New("reachability detection needs Linux")
}

func watchAddrs(ctx context.Context, settle, backstop time.Duration, changed func(), logger *slog.Logger) {
	<-ctx.Done()
}
