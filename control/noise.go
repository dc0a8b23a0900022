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
// 1.80, the oldest of the last ten minor releases.
const MinCapVer tailcfg.CapabilityVersion = 113

// maxRequestBody bounds every request inside Noise. Anyone may complete the
// Noise handshake, so all of /machine/* is unauthenticated surface.
const maxRequestBody = 1 << 20

type machineKeyCtx struct{}

func (s *Server) serveKey(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("v") == "" {
		// Pre-Noise clients; we don't serve them.
		http.Error(w, "homenet needs a Tailscale client of version 1.80 or newer", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&tailcfg.OverTLSPublicKeyResponse{PublicKey: s.noiseKey.Public()})
}

// serveNoiseUpgrade upgrades to TS2021 and serves HTTP/2 over the Noise
// connection. GET is allowed for WebSocket clients.
func (s *Server) serveNoiseUpgrade(w http.ResponseWriter, r *http.Request) {
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
	conn, err := controlhttpserver.AcceptHTTP(r.Context(), w, r, s.noiseKey, rejectOldClients)
	if err != nil {
		s.metrics.noiseUpgradeErrors.Add(1)
		s.log.Debug("control: noise upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.metrics.noiseUpgrades.Add(1)
	defer conn.Close()

	ctx := context.WithValue(r.Context(), machineKeyCtx{}, conn.Peer())
	ctx = context.WithValue(ctx, localCtx{}, isLocalRequest(r))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /machine/register", s.serveRegister)
	mux.HandleFunc("POST /machine/map", s.serveMap)
	mux.HandleFunc("POST /machine/update-health", discard(http.StatusNoContent))
	mux.HandleFunc("POST /machine/set-dns", discard(http.StatusNotImplemented))
	var h2 http2.Server
	h2.ServeConn(conn, &http2.ServeConnOpts{
		Context: ctx,
		BaseConfig: &http.Server{
			Handler:           http.MaxBytesHandler(mux, maxRequestBody),
			ReadHeaderTimeout: 30 * time.Second,
		},
	})
}

// rejectOldClients runs before HTTP/2 starts: clients too old to work are
// refused before they cost anything more.
func rejectOldClients(version int, _ io.Writer) error {
	if tailcfg.CapabilityVersion(version) < MinCapVer {
		return fmt.Errorf("client capability version %d < %d", version, MinCapVer)
	}
	return nil
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
