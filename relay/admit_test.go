package relay

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// admitRequestJSON encodes an admission request as derpserver does.
func admitRequestJSON(t testing.TB, k key.NodePublic) string {
	t.Helper()
	b, err := json.Marshal(tailcfg.DERPAdmitClientRequest{NodePublic: k, Source: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serveAdmit runs one request through an admitHandler.
func serveAdmit(h *admitHandler, method, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/admit/x", strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAdmitHandler(t *testing.T) {
	member, stranger := key.NewNode().Public(), key.NewNode().Public()
	tests := []struct {
		name        string
		method      string
		body        string
		wantStatus  int
		wantAllow   bool
		wantInvalid int64
	}{
		{"registered node", "POST", admitRequestJSON(t, member), 200, true, 0},
		{"unregistered node", "POST", admitRequestJSON(t, stranger), 200, false, 0},
		{"GET", "GET", admitRequestJSON(t, member), 405, false, 0},
		{"not JSON", "POST", "nodekey please", 400, false, 1},
		{"trailing garbage", "POST", admitRequestJSON(t, member) + "x", 400, false, 1},
		{"no node key", "POST", `{"Source":"192.0.2.1"}`, 400, false, 1},
		{"JSON null", "POST", `null`, 400, false, 1},
		{"malformed node key", "POST", `{"NodePublic":"nodekey:zz"}`, 400, false, 1},
		{"too large", "POST", `{"NodePublic":"` + strings.Repeat("a", maxAdmitBody) + `"}`, 400, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stats counters
			var asked []key.NodePublic
			h := &admitHandler{
				admit: func(k key.NodePublic) bool { asked = append(asked, k); return k == member },
				stats: &stats,
			}
			rec := serveAdmit(h, tt.method, tt.body)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tt.wantStatus)
			}
			if got := stats.admitInvalid.Value(); got != tt.wantInvalid {
				t.Errorf("admitInvalid = %d, want %d", got, tt.wantInvalid)
			}
			if rec.Code != http.StatusOK {
				if len(asked) != 0 {
					t.Errorf("admit called for a rejected request")
				}
				return
			}
			var res tailcfg.DERPAdmitClientResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("response %q: %v", rec.Body.String(), err)
			}
			if res.Allow != tt.wantAllow {
				t.Errorf("Allow = %v, want %v", res.Allow, tt.wantAllow)
			}
			if len(asked) != 1 {
				t.Errorf("admit called %d times, want 1", len(asked))
			}
			if got := stats.admitAllowed.Value() + stats.admitDenied.Value(); got != 1 {
				t.Errorf("allowed+denied = %d, want 1", got)
			}
		})
	}
}

// FuzzAdmitHandler checks that no request body makes the admission handler
// panic, that bodies which are not JSON are refused with 400, and that every
// 200 answer is a well-formed response agreeing with admit.
func FuzzAdmitHandler(f *testing.F) {
	f.Add(admitRequestJSON(f, key.NewNode().Public()))
	f.Add(`{"NodePublic":"nodekey:0000000000000000000000000000000000000000000000000000000000000000"}`)
	f.Add(`{"NodePublic":"nodekey:01","Source":"::1"}`)
	f.Add(`{"NodePublic":null}`)
	f.Add(`[]`)
	f.Add(`"nodekey:"`)
	f.Add("\xff\xfe")
	f.Add(``)
	// admit depends on the key only, so the expected answer is recomputable.
	admit := func(k key.NodePublic) bool { return k.Raw32()[0]%2 == 0 }
	f.Fuzz(func(t *testing.T, body string) {
		h := &admitHandler{admit: admit, stats: new(counters)}
		rec := serveAdmit(h, "POST", body)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest:
		default:
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		if !json.Valid([]byte(body)) && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d for non-JSON body %q, want 400", rec.Code, body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		var req tailcfg.DERPAdmitClientRequest
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			t.Fatalf("answered 200 to a body that does not decode (%v): %q", err, body)
		}
		var res tailcfg.DERPAdmitClientResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("200 response %q does not decode: %v", rec.Body.String(), err)
		}
		if res.Allow != admit(req.NodePublic) {
			t.Fatalf("Allow = %v for %v, want %v", res.Allow, req.NodePublic, !res.Allow)
		}
	})
}
