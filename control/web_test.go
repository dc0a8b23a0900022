package control

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The login page takes the admin password over https only: over http it
// says where else to approve, and refuses a posted password.
func TestRegisterPagePasswordOnlyOverHTTPS(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	s.cfg.AdminPassword = "secret"
	tests := []struct {
		name     string
		tls      bool
		method   string
		wantCode int
		wantText string
	}{
		{"http page", false, "GET", http.StatusOK, "does not take the admin password"},
		{"http post", false, "POST", http.StatusForbidden, "homenet nodes approve"},
		{"https page", true, "GET", http.StatusOK, `name="password"`},
		{"https post", true, "POST", http.StatusOK, "is approved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := startLogin(t, newTestNode(t, s.url, "phone-"+strings.ReplaceAll(tt.name, " ", "-")))
			var body *strings.Reader
			if tt.method == "POST" {
				body = strings.NewReader(url.Values{"password": {"secret"}}.Encode())
			} else {
				body = strings.NewReader("")
			}
			r := httptest.NewRequest(tt.method, "/register/"+code, body)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			if w.Code != tt.wantCode || !strings.Contains(w.Body.String(), tt.wantText) {
				t.Errorf("%s %s: %d, want %d with %q:\n%s", tt.method, r.URL, w.Code, tt.wantCode, tt.wantText, w.Body)
			}
			approved := strings.Contains(w.Body.String(), "is approved")
			if approved != (tt.tls && tt.method == "POST") {
				t.Errorf("approved %v over tls=%v with %s", approved, tt.tls, tt.method)
			}
		})
	}
}
