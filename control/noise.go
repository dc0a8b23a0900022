package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/net/http2"
	"tailscale.com/control/controlhttp/controlhttpserver"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// MinCapVer is the oldest client capability version we serve: Tailscale
// 1.84 (minVersion). Older clients could join, but not use our relay when
// it has no certificate from a CA (its hostname is an IP address) and the
// DERP map pins its own by hash (CertName "sha256-raw:…"): 1.80 (113)
// knows no pins and wants a certificate for the name; 1.82 (115) pins but
// accepts exactly one certificate, and the DERP server sends its meta
// certificate after ours; 1.84 (116) is the first to skip that one.
// Without the relay, and behind a hard NAT without a direct path either,
// such a client would sit "online" with nothing working, so it is refused
// at registration with a message naming the version it needs (tooOld).
const MinCapVer tailcfg.CapabilityVersion = 116

// minVersion is the Tailscale release of MinCapVer, for messages to people.
const minVersion = "1.84"

// maxRequestBody bounds every request inside Noise. Anyone may complete the
// Noise handshake, so all of /machine/* is unauthenticated surface.
const maxRequestBody = 1 << 20

type machineKeyCtx struct{}

// capVerCtx holds the client's capability version from the Noise handshake.
type capVerCtx struct{}

func (s *Server) serveKey(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("v") == "" {
		// Pre-Noise clients; we don't serve them.
		http.Error(w, "homenet needs Tailscale "+minVersion+" or newer", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&tailcfg.OverTLSPublicKeyResponse{PublicKey: s.noiseKey.Public()})
}

// serveNoiseUpgrade upgrades to TS2021 and serves HTTP/2 over the Noise
// connection. GET is allowed for WebSocket clients.
func (s *Server) serveNoiseUpgrade(w http.ResponseWriter, r *http.Request) {
	// This handler owns the connection's place among the unauthenticated
	// ones (see limitUpgrade): it gives it back when the connection ends,
	// or now if there is none.
	uc, _ := r.Context().Value(unauthCtx{}).(*unauthConn)
	served := false
	defer func() {
		if !served {
			s.limits.unauth.release(uc)
		}
	}()
	if r.Method != "POST" && r.Method != "GET" {
		s.metrics.noiseUpgradeErrors.Add(1)
		http.Error(w, "POST or GET required", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Upgrade") == "" {
		s.metrics.noiseUpgradeErrors.Add(1)
		http.Error(w, "missing Upgrade header: a reverse proxy must pass WebSocket/Upgrade through", http.StatusBadRequest)
		return
	}
	// Clients of every version get through: one older than MinCapVer is
	// refused at registration, the only refusal it shows its user (see
	// tooOld); refusing the upgrade only makes it retry in silence.
	conn, err := controlhttpserver.AcceptHTTP(r.Context(), w, r, s.noiseKey, nil)
	if err != nil {
		s.metrics.noiseUpgradeErrors.Add(1)
		s.log.Debug("control: noise upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.metrics.noiseUpgrades.Add(1)
	s.noiseAccepted(r, conn.Peer(), func() { conn.Close() })

	// The request's context ends when this handler returns; its values
	// (the source, the local flag) stay with the connection.
	ctx := context.WithoutCancel(r.Context())
	ctx = context.WithValue(ctx, machineKeyCtx{}, conn.Peer())
	ctx = context.WithValue(ctx, capVerCtx{}, tailcfg.CapabilityVersion(conn.ProtocolVersion()))
	ctx = context.WithValue(ctx, localCtx{}, isLocalRequest(r))
	// Served on a goroutine of its own so that this handler returns: the
	// HTTP/1 connection it came on keeps its read and write buffers, the
	// response's and its goroutine's deep stack for as long as the handler
	// runs, about 12 KiB for each of N map sessions.
	served = true
	go func() {
		defer s.limits.unauth.release(uc)
		defer conn.Close()
		var h2 http2.Server
		h2.ServeConn(conn, &http2.ServeConnOpts{
			Context: ctx,
			BaseConfig: &http.Server{
				Handler:           s.noiseHandler,
				ReadHeaderTimeout: 30 * time.Second,
			},
		})
	}()
}

// newNoiseHandler serves the requests inside Noise. It is built once and
// shared by every connection (what differs is in the request's context):
// a mux of its own cost each of N map sessions a few KiB.
func (s *Server) newNoiseHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /machine/register", s.serveRegister)
	mux.HandleFunc("POST /machine/map", s.serveMap)
	mux.HandleFunc("POST /machine/update-health", discard(http.StatusNoContent))
	mux.HandleFunc("POST /machine/set-dns", discard(http.StatusNotImplemented))
	return http.MaxBytesHandler(s.limitNoise(mux), maxRequestBody)
}

func discard(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(code)
	}
}

// localCtx marks a Noise connection from this host (see isLocalRequest).
type localCtx struct{}

// isLocalRequest reports whether r comes from a client on this host, such
// as the in-process gateway agent, rather than through a reverse proxy
// here, which would say so in a forwarding header.
func isLocalRequest(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback() &&
		r.Header.Get("X-Forwarded-For") == "" && r.Header.Get("Forwarded") == "" && r.Header.Get("X-Real-Ip") == ""
}

// isLocal reports whether the Noise connection of r is from this host.
func isLocal(r *http.Request) bool {
	local, _ := r.Context().Value(localCtx{}).(bool)
	return local
}

// peerMachineKey is the machine key proven by the Noise handshake.
func peerMachineKey(r *http.Request) key.MachinePublic {
	k, _ := r.Context().Value(machineKeyCtx{}).(key.MachinePublic)
	return k
}

// noiseCapVer is the capability version the client of r announced in the
// Noise handshake; zero outside Noise. Register requests carry none of
// their own (RegisterRequest.Version is 1 for historical reasons).
func noiseCapVer(r *http.Request) tailcfg.CapabilityVersion {
	v, _ := r.Context().Value(capVerCtx{}).(tailcfg.CapabilityVersion)
	return v
}

// readJSON reads a JSON request body, rejecting trailing garbage.
func readJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %T: %w", v, err)
	}
	return nil
}

func writeJSONResponse(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
