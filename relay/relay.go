package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"tailscale.com/derp/derpserver"
	"tailscale.com/metrics"
	"tailscale.com/net/stunserver"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// The DERP region this relay describes. Region IDs 900 and up are reserved
// for custom regions, so they never collide with Tailscale's own.
const (
	RegionID   = 900
	RegionCode = "home"
	RegionName = "homenet"
	nodeName   = "900a"
)

// Config says where the relay listens and how clients reach it.
//
// An IP address (or an empty Hostname) gets a self-signed certificate, kept in
// StateDir and pinned by hash in the region. A DNS name gets an ACME
// certificate, kept in StateDir/certmagic and renewed in the background. It is
// validated by DNS-01 through DNSProvider when that is set, so Listen can be
// any port and needs no inbound reachability; otherwise by TLS-ALPN-01 on
// Listen, which the CA must then reach on port 443. With an empty Hostname
// the region has no HostName and the caller must supply one (an IP address:
// clients send no SNI to an IP, so the certificate's lack of a name does not
// matter).
type Config struct {
	Listen        string // TCP address for DERP over TLS, e.g. ":8443"
	STUNListen    string // UDP address for STUN, e.g. ":3478"; empty disables STUN
	Hostname      string // what clients dial: an IP address or a DNS name
	StateDir      string // where the self-signed cert/key and the ACME account and certificates persist
	ACMEDirectory string // ACME directory URL for DNS hostnames; empty means Let's Encrypt
	ACMEEmail     string // optional ACME account contact
	// DNSProvider, if set, makes ACME use DNS-01 only: it publishes the
	// _acme-challenge TXT record of Hostname and removes it afterwards.
	// Unused for IP addresses.
	DNSProvider DNSProvider
	// DNSResolvers are the DNS servers ("host" or "host:port") asked whether
	// a DNS-01 TXT record is visible yet, before the CA is asked to look;
	// empty means the servers of /etc/resolv.conf.
	DNSResolvers []string
	// HTTPChallengeAddr, when set and Hostname is an IP address, replaces
	// the pinned self-signed certificate with an ACME certificate for the
	// address (RFC 8738), which every client trusts, validated by HTTP-01:
	// the caller serves HTTPChallengeHandler on this address, which the CA
	// must reach on port 80, and listens there before Start. Ignored for
	// DNS names.
	HTTPChallengeAddr string
	// Handler, if set, serves every other path on the TLS listener. The
	// control server goes here, so that clients that insist on Noise over
	// TLS on port 443 find it beside DERP.
	Handler http.Handler
}

// Relay is a running DERP relay with an optional STUN server.
// It is created by Start and stopped by Close or by the end of Start's context.
type Relay struct {
	logger *slog.Logger
	region *tailcfg.DERPRegion // never handed out; Region returns clones
	certs  certSource

	derp   *derpserver.Server
	public *http.Server // DERP over TLS on Config.Listen
	local  *http.Server // loopback: admission endpoint and mesh DERP
	peers  *peerCloser  // in-process mesh client used by Disconnect

	cancel    context.CancelFunc
	stopAfter func() bool // unregisters the context.AfterFunc that calls Close
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	stats    counters
	refusals *refusals    // limits sources of refused node keys (limits.go)
	vars     *metrics.Set // a Set, so that tsweb/varz descends into it
}

// counters are the relay's own statistics; the DERP server keeps its own.
type counters struct {
	admitAllowed     expvar.Int // admission queries answered "allow"
	admitDenied      expvar.Int // admission queries answered "deny"
	admitInvalid     expvar.Int // malformed admission queries
	disconnects      expvar.Int // Disconnect calls
	disconnectErrors expvar.Int // Disconnect calls that could not reach the DERP server
}

// Start binds the listeners and serves in the background until ctx is done or
// Close is called. admit reports whether a node key belongs to a registered,
// unexpired node; it is called for every DERP connection except the relay's
// own, must be safe for concurrent use and should answer quickly (the DERP
// server refuses the node if no answer comes within 5 seconds).
func Start(ctx context.Context, cfg Config, admit func(key.NodePublic) bool, logger *slog.Logger) (_ *Relay, retErr error) {
	if admit == nil {
		return nil, errors.New("relay: nil admit func")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Listen == "" {
		return nil, errors.New("relay: empty Listen address")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("relay: empty StateDir")
	}
	host, err := parseHostname(cfg.Hostname)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	r := &Relay{logger: logger, cancel: cancel, refusals: newRefusals(), vars: new(metrics.Set)}
	var closers []func()
	defer func() {
		if retErr != nil {
			cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			r.wg.Wait()
		}
	}()

	r.derp = derpserver.New(key.NewNode(), logfAt(logger.With("component", "derp"), slog.LevelDebug))
	meshKey, err := newMeshKey()
	if err != nil {
		return nil, err
	}
	if err := r.derp.SetMeshKey(meshKey.String()); err != nil {
		return nil, fmt.Errorf("relay: setting mesh key: %w", err)
	}
	closers = append(closers, func() { r.derp.Close() })

	// The loopback server answers the DERP server's admission queries and
	// carries the mesh connection that Disconnect uses.
	localLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay: listening on loopback for admission: %w", err)
	}
	closers = append(closers, func() { localLn.Close() })
	admitPath := "/admit/" + rand.Text()
	r.derp.SetVerifyClientURL("http://" + localLn.Addr().String() + admitPath)
	r.derp.SetVerifyClientURLFailOpen(false)
	localMux := http.NewServeMux()
	localMux.Handle("/derp", derpserver.Handler(r.derp))
	localMux.Handle("POST "+admitPath, &admitHandler{admit: admit, stats: &r.stats, refusals: r.refusals})
	r.local = newHTTPServer(ctx, localMux, logger)

	publicLn, err := listenTCP(ctx, cfg.Listen)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { publicLn.Close() })
	r.certs, err = newCertSource(ctx, cfg, host, publicLn.Addr(), logger)
	if err != nil {
		return nil, err
	}
	closers = append(closers, r.certs.close)
	tlsConf := serverTLSConfig(r.certs, r.derp.ModifyTLSConfigToAddMetaCert)
	publicMux := http.NewServeMux()
	publicMux.Handle("/derp", r.refusals.gate(derpserver.Handler(r.derp)))
	publicMux.HandleFunc("/derp/probe", derpserver.ProbeHandler)
	publicMux.HandleFunc("/derp/latency-check", derpserver.ProbeHandler)
	publicMux.HandleFunc("/generate_204", derpserver.ServeNoContent)
	if cfg.Handler != nil {
		publicMux.Handle("/", cfg.Handler)
	}
	r.public = newHTTPServer(ctx, publicMux, logger)
	r.public.TLSConfig = tlsConf

	stunPort := -1
	var stun *stunserver.STUNServer
	if cfg.STUNListen != "" {
		stun = stunserver.New(ctx) // closes its socket when ctx is done
		if err := stun.Listen(cfg.STUNListen); err != nil {
			return nil, fmt.Errorf("relay: listening for STUN on %q: %w", cfg.STUNListen, err)
		}
		stunPort = stun.LocalAddr().(*net.UDPAddr).Port
	}

	r.peers, err = newPeerCloser(ctx, "http://"+localLn.Addr().String()+"/derp", meshKey, logger)
	if err != nil {
		return nil, err
	}

	r.goServe("loopback", func() error { return r.local.Serve(localLn) })
	r.goServe("derp", func() error { return r.public.ServeTLS(publicLn, "", "") })
	if stun != nil {
		r.goServe("stun", stun.Serve)
	}
	r.wg.Go(func() { r.peers.run(ctx) })

	r.region = regionFor(host, publicLn.Addr().(*net.TCPAddr).Port, stunPort, r.certs.certName())
	r.vars.Set("admit_allowed", &r.stats.admitAllowed)
	r.vars.Set("admit_denied", &r.stats.admitDenied)
	r.vars.Set("admit_invalid", &r.stats.admitInvalid)
	r.vars.Set("admit_rate_limited", &r.refusals.limited)
	r.vars.Set("disconnects", &r.stats.disconnects)
	r.vars.Set("disconnect_errors", &r.stats.disconnectErrors)
	r.vars.Set("derp", r.derp.ExpVar(false))
	r.vars.Set("cert", expvar.Func(func() any { return r.CertStatus() }))

	r.stopAfter = context.AfterFunc(ctx, func() { r.Close() })
	r.certs.warmUp(ctx)
	node := r.region.Nodes[0]
	logger.Info("relay started",
		"derp", publicLn.Addr().String(), "stun_port", stunPort,
		"hostname", node.HostName, "cert", r.certs.describe())
	return r, nil
}

// HTTPChallengeHandler returns next, wrapped to answer the ACME HTTP-01
// challenges of an IP certificate (see Config.HTTPChallengeAddr). Without
// one it returns next unchanged.
func (r *Relay) HTTPChallengeHandler(next http.Handler) http.Handler {
	if a, ok := r.certs.(*acmeCerts); ok && a.mode == CertModeHTTP01 {
		return a.issuer.HTTPChallengeHandler(next)
	}
	return next
}

// Region returns the DERP region describing this relay, for the control
// server's DERP map. The caller owns the returned value.
func (r *Relay) Region() *tailcfg.DERPRegion {
	return r.region.Clone()
}

// Disconnect closes every current DERP connection of node k. It is meant for
// nodes that were deleted or expired: the caller must make admit refuse k
// before calling Disconnect, or the node simply reconnects. Connections are
// closed asynchronously, shortly after Disconnect returns.
func (r *Relay) Disconnect(k key.NodePublic) {
	r.stats.disconnects.Add(1)
	if err := r.peers.closePeer(k); err != nil {
		r.stats.disconnectErrors.Add(1)
		r.logger.Warn("relay: disconnecting node failed", "node", k.ShortString(), "err", err)
	}
}

// ExpVar returns the relay's counters and the DERP server's statistics, for
// publishing by the caller (the relay publishes nothing globally). Its
// String is JSON; tsweb/varz renders it as Prometheus series under the
// caller's prefix: admit_allowed, admit_denied (refused by admit),
// admit_invalid, admit_rate_limited (answered 429 before the DERP
// handshake: see limits.go), disconnects, disconnect_errors, and the DERP server's
// under derp_ (derp_accepts, derp_current_connections, derp_bytes_received,
// derp_bytes_sent, derp_packets_received, derp_packets_sent, …).
func (r *Relay) ExpVar() expvar.Var {
	return r.vars
}

// Close stops the listeners, drops every DERP connection and waits for the
// relay's goroutines to exit. It is safe to call more than once. ACME work in
// flight is cancelled but not waited for: certmagic's goroutines notice the
// cancellation and exit shortly after.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.stopAfter()
		r.cancel()
		r.peers.close()
		err := r.public.Close() // listener and non-hijacked connections
		r.certs.close()         // certmagic's maintenance goroutine
		r.derp.Close()          // hijacked DERP connections; waits for them
		err2 := r.local.Close() // admission endpoint, after the last DERP handshake
		r.wg.Wait()
		r.closeErr = errors.Join(err, err2)
		r.logger.Info("relay stopped")
	})
	return r.closeErr
}

// goServe runs serve in the background until it returns, logging unexpected errors.
func (r *Relay) goServe(what string, serve func() error) {
	r.wg.Go(func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.logger.Error("relay: server stopped", "server", what, "err", err)
		}
	})
}
