package control

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// The handlers behind Noise see whatever any client sends: they must answer
// every body with a response, never a panic or a 5xx.
func fuzzHandler(f *testing.F, path string, h func(*Server) http.HandlerFunc) {
	f.Add([]byte(`{"Version":130,"NodeKey":"nodekey:0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"Version":130,"Auth":{"AuthKey":"hn-000000000000-00000000000000000000000000000000"}}`))
	f.Add([]byte(`{"Version":130,"Followup":"::::"}`))
	f.Add([]byte(`{"Version":1}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"Endpoints":["1.2.3.4:5","[fe80::1%eth0]:1"],"Stream":false,"OmitPeers":true}`))
	// One server for every input: a new one each time (a database and a
	// listener) held the fuzzer to a few inputs a second.
	s := newTestServer(f, "100.86.0.0/16")
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.WithValue(context.Background(), machineKeyCtx{}, key.NewMachine().Public())
		ctx = context.WithValue(ctx, capVerCtx{}, tailcfg.CurrentCapabilityVersion) // past tooOld
		req := httptest.NewRequestWithContext(ctx, "POST", path, bytes.NewReader(body))
		w := httptest.NewRecorder()
		h(s.Server)(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body.String())
		}
	})
}

func FuzzRegisterRequest(f *testing.F) {
	fuzzHandler(f, "/machine/register", func(s *Server) http.HandlerFunc { return s.serveRegister })
}

func FuzzMapRequest(f *testing.F) {
	fuzzHandler(f, "/machine/map", func(s *Server) http.HandlerFunc { return s.serveMap })
}
