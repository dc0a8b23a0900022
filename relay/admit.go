package relay

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// maxAdmitBody bounds an admission request. derpserver sends about 120 bytes.
const maxAdmitBody = 4 << 10

// admitHandler answers the DERP server's admission queries
// (derpserver.Server.SetVerifyClientURL): it decodes a
// tailcfg.DERPAdmitClientRequest and replies with a
// tailcfg.DERPAdmitClientResponse saying whether admit accepts the node key.
// It is served only on loopback, at an unguessable path.
type admitHandler struct {
	admit    func(key.NodePublic) bool
	stats    *counters
	refusals *refusals // told of each refusal; may be nil
}

func (h *admitHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "admission queries must be POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdmitBody))
	if err != nil {
		h.stats.admitInvalid.Add(1)
		http.Error(w, "reading admission request: "+err.Error(), http.StatusBadRequest)
		return
	}
	var req tailcfg.DERPAdmitClientRequest
	if err := json.Unmarshal(body, &req); err != nil {
		h.stats.admitInvalid.Add(1)
		http.Error(w, "decoding admission request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.NodePublic.IsZero() {
		h.stats.admitInvalid.Add(1)
		http.Error(w, "admission request without a node key", http.StatusBadRequest)
		return
	}
	allow := h.admit(req.NodePublic)
	if allow {
		h.stats.admitAllowed.Add(1)
	} else {
		h.stats.admitDenied.Add(1)
		h.refusals.refused(req.Source, time.Now())
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tailcfg.DERPAdmitClientResponse{Allow: allow})
}
