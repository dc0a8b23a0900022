//go:build !linux

package subnet

import (
	"context"
	"errors"
	"expvar"
	"log/slog"
	"net/netip"
)

var errNotLinux = errors.New("gateway: the agent needs Linux (a kernel TUN, policy routing and netfilter)")

// Agent is a running gateway agent; off Linux there is none.
type Agent struct{}

// Start fails: the agent needs Linux.
func Start(ctx context.Context, cfg Config) (*Agent, error) { return nil, errNotLinux }

// Run fails: the agent needs Linux.
func Run(ctx context.Context, cfg Config) error { return errNotLinux }

// Cleanup does nothing off Linux.
func Cleanup(stateDir string, logger *slog.Logger) error { return nil }

func (a *Agent) Close() error                        { return nil }
func (a *Agent) SetStaticEndpoints([]netip.AddrPort) {}
func (a *Agent) Status() Status                      { return Status{} }
func (a *Agent) Done() <-chan struct{}               { return nil }
func (a *Agent) ExpVar() expvar.Var                  { return new(expvar.Map) }
