package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"homenet/control"
	"homenet/webadmin"
)

// startWebAdmin serves the web admin on web.listen until ctx is done, and
// metrics at /metrics, without a login, for Prometheus. It answers only
// connections to this host's own side of the network (see ownerSide); the
// public control listener never serves it.
func startWebAdmin(ctx context.Context, cfg Config, srv *control.Server, metrics http.Handler, errc chan<- error, logger *slog.Logger) (*http.Server, error) {
	if cfg.Web.Listen == "" {
		return nil, nil
	}
	wa, err := webadmin.New(webadmin.Config{
		Backend: srv,
		// Read at every login: a new password takes effect at once.
		Password:  func() string { pw, _ := adminPassword(cfg); return pw },
		ServerURL: cfg.Server.URL,
		Logger:    logger.With("part", "webadmin"),
	})
	if err != nil {
		return nil, err
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("web.listen: %w", err)
	}
	allowed, err := ownerSide(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	hs := &http.Server{Handler: withMetrics(wa.Handler(), metrics), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		err := hs.Serve(&filterListener{Listener: ln, allow: allowed, logger: logger})
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("web admin: %w", err)
		}
	}()
	logger.Info("homenet: web admin", "listen", cfg.Web.Listen, "answers", "loopback, LAN and tailnet addresses")
	return hs, nil
}

// withMetrics serves metrics at GET /metrics and everything else with web.
func withMetrics(web, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("/", web)
	return mux
}

// ownerSide returns whether a local address is one the owner reaches the
// web admin at: loopback, the tailnet's, or the LAN's (the gateway's LAN
// routes; without any, a private address, as on a NAS whose only
// interface faces the home router). A WAN address never is.
func ownerSide(cfg Config) (func(netip.Addr) bool, error) {
	prefix4, err := cfg.Prefix4()
	if err != nil {
		return nil, err
	}
	mine := []netip.Prefix{prefix4, control.Prefix6}
	if cfg.Gateway.Enabled {
		if lan, err := cfg.GatewayLAN(); err == nil {
			mine = append(mine, lan.Routes...)
		}
	}
	lanKnown := len(mine) > 2
	return func(a netip.Addr) bool {
		a = a.Unmap()
		switch {
		case a.IsLoopback():
			return true
		case slices.ContainsFunc(mine, func(p netip.Prefix) bool { return p.Contains(a) }):
			return true
		}
		return !lanKnown && addrClass(a) == addrPrivate
	}, nil
}

// filterListener drops connections to local addresses allow refuses, so
// that a listener on all addresses does not answer on the WAN.
type filterListener struct {
	net.Listener
	allow  func(netip.Addr) bool
	logger *slog.Logger
}

func (l *filterListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		local, ok := c.LocalAddr().(*net.TCPAddr)
		if ok && l.allow(local.AddrPort().Addr()) {
			return c, nil
		}
		l.logger.Debug("web admin: refused a connection to a WAN-side address", "local", c.LocalAddr(), "remote", c.RemoteAddr())
		c.Close()
	}
}
