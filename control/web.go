package control

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"time"
)

// The interactive login page. `tailscale up` prints its URL; the owner
// opens it and approves with the admin password (over https only: over
// http the password would cross the internet in the clear), or in the web
// admin, or runs `homenet nodes approve CODE`.
var registerPage = template.Must(template.New("register").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>homenet: approve {{.Hostname}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32em;margin:2em auto;padding:0 1em}
code{background:#eee;padding:.1em .3em}input,button{font-size:1em;padding:.4em}</style></head>
<body><h1>Approve a device</h1>
{{if .Done}}<p><strong>{{.Hostname}}</strong> is approved and joining your home network. You can close this page.</p>
{{else if .Missing}}<p>This login has expired or was already handled. Run <code>tailscale up</code> on the device again.</p>
{{else}}<p><strong>{{.Hostname}}</strong> ({{.OS}}) wants to join your home network.</p>
<p>Machine key <code>{{.MachineKey}}</code></p>
{{if .Wrong}}<p style="color:#b00">Wrong password.</p>{{end}}
{{if .CanPassword}}<form method="post"><label>Admin password <input type="password" name="password" autofocus></label>
<button type="submit">Approve</button></form>
{{else}}<p>This page does not take the admin password: it is not served over https.
Approve the device under <em>Pending logins</em> in homenet's web admin on your home network, or:</p>{{end}}
<p>On the gateway: <code>homenet nodes approve {{.Code}}</code></p>{{end}}
</body></html>`))

type registerPageData struct {
	Code, Hostname, OS, MachineKey    string
	Done, Missing, Wrong, CanPassword bool
}

func (s *Server) serveRegisterPage(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	s.mu.Lock()
	pr := s.pending[code]
	s.mu.Unlock()
	d := registerPageData{Code: code, Missing: pr == nil, CanPassword: s.cfg.AdminPassword != "" && r.TLS != nil}
	if pr != nil {
		d.Hostname, d.MachineKey = hostnameOf(pr.hostinfo), pr.machineKey.ShortString()
		if pr.hostinfo != nil {
			d.OS = pr.hostinfo.OS
		}
	}
	if r.Method == http.MethodPost && pr != nil {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if !d.CanPassword {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			registerPage.Execute(w, d)
			return
		}
		if s.passwordOK(r.PostFormValue("password")) {
			if _, err := s.approve(r.Context(), code); err != nil {
				http.Error(w, "approving failed: "+err.Error(), http.StatusInternalServerError)
				return
			}
			d.Done = true
		} else {
			time.Sleep(time.Second) // slow down guessing
			d.Wrong = true
			w.WriteHeader(http.StatusForbidden)
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "GET or POST only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	registerPage.Execute(w, d)
}

func (s *Server) passwordOK(got string) bool {
	want := s.cfg.AdminPassword
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("This is a homenet coordination server. In the Tailscale app, use it as a custom login server:\n\n\t" + s.cfg.ServerURL + "\n"))
}
