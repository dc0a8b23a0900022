package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"tailscale.com/net/ktimeout"
	"tailscale.com/types/logger"
)

// Connection timeouts of the public DERP listener. The HTTP server's
// read/write timeouts only bound TLS handshakes and plain requests: DERP
// connections are hijacked, which clears the deadlines.
const (
	readHeaderTimeout = 10 * time.Second
	readWriteTimeout  = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	tcpKeepAlive      = 10 * time.Minute // DERP has its own 60s keepalive frames
	tcpUserTimeout    = 15 * time.Second // drop peers that stop acknowledging data
)

// listenTCP opens the public DERP listener with derper's socket options:
// long TCP keepalives (DERP has its own) and a short TCP_USER_TIMEOUT so that
// dead peers are reaped promptly. MPTCP is off because it rejects that option.
func listenTCP(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAlive: tcpKeepAlive,
		Control:   ktimeout.UserTimeout(tcpUserTimeout),
	}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: listening for DERP on %q: %w", addr, err)
	}
	return ln, nil
}

// newHTTPServer returns an HTTP/1.1-only server (DERP hijacks connections,
// which HTTP/2 cannot do) with conservative timeouts. Its own error log, mostly
// TLS handshake failures from scanners, goes to debug level.
func newHTTPServer(ctx context.Context, h http.Handler, logger *slog.Logger) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &protos,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readWriteTimeout,
		WriteTimeout:      readWriteTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}

// logfAt adapts logger to the printf-style logger tailscale.com packages take,
// logging at level.
func logfAt(l *slog.Logger, level slog.Level) logger.Logf {
	return func(format string, args ...any) {
		if l.Enabled(context.Background(), level) {
			l.Log(context.Background(), level, fmt.Sprintf(format, args...))
		}
	}
}
