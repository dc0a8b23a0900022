package webadmin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"homenet/control"
)

// TestPreviewPages renders every page with the fake backend into files, to
// look at in a browser without running homenet:
//
//	WEBADMIN_PREVIEW=/tmp/webadmin go test -run TestPreviewPages ./webadmin
//	xdg-open /tmp/webadmin/overview.html
//
// Without WEBADMIN_PREVIEW the files go to a temporary directory. The live
// list on the phone page needs a server: see TestServePreview.
func TestPreviewPages(t *testing.T) {
	dir := os.Getenv("WEBADMIN_PREVIEW")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, false)
	const src = "192.0.2.1"
	c, csrf := h.login(src)
	pages := []struct {
		file string
		do   func() string
	}{
		{"overview.html", func() string { return h.do("GET", "/", src, c, nil).Body.String() }},
		{"devices.html", func() string { return h.do("GET", "/devices", src, c, nil).Body.String() }},
		{"pending.html", func() string { return h.do("GET", "/pending", src, c, nil).Body.String() }},
		{"routes.html", func() string { return h.do("GET", "/routes", src, c, nil).Body.String() }},
		{"keys.html", func() string { return h.do("GET", "/keys", src, c, nil).Body.String() }},
		{"key-created.html", func() string {
			return h.do("POST", "/keys", src, c, url.Values{"csrf": {csrf}, "reusable": {"on"}, "tags": {"tag:tv"}}).Body.String()
		}},
		{"phone.html", func() string { return h.do("GET", "/phone", src, c, nil).Body.String() }},
		{"action-done.html", func() string {
			h.do("POST", "/devices/2/rename", src, c, url.Values{"csrf": {csrf}, "name": {"my-phone"}})
			return h.do("GET", "/devices", src, c, nil).Body.String()
		}},
		{"login.html", func() string { return h.do("GET", "/login", src, nil, nil).Body.String() }},
		{"login-wrong.html", func() string {
			return h.do("POST", "/login", "192.0.2.9", nil, url.Values{"password": {"guess"}}).Body.String()
		}},
		{"login-locked.html", func() string {
			for range MaxLoginFailures {
				h.do("POST", "/login", "192.0.2.10", nil, url.Values{"password": {"guess"}})
			}
			return h.do("GET", "/login", "192.0.2.10", nil, nil).Body.String()
		}},
		{"not-found.html", func() string { return h.do("GET", "/nope", src, c, nil).Body.String() }},
	}
	// Links between the files instead of the server's paths.
	links := strings.NewReplacer(
		`"/static/`, `"static/`,
		`href="/"`, `href="overview.html"`,
		`href="/devices`, `href="devices.html`,
		`href="/pending"`, `href="pending.html"`,
		`href="/routes"`, `href="routes.html"`,
		`href="/keys"`, `href="keys.html"`,
		`href="/phone"`, `href="phone.html"`,
	)
	for _, p := range pages {
		body := p.do()
		if !strings.Contains(body, "</html>") {
			t.Errorf("%s: not a whole page:\n%s", p.file, body)
		}
		if err := os.WriteFile(filepath.Join(dir, p.file), []byte(links.Replace(body)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"style.css", "app.js"} {
		b, err := assets.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "static", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d pages to %s", len(pages), dir)
}

// TestServePreview serves the web admin on the fake backend, with a new
// login waiting every 20 seconds, until interrupted:
//
//	WEBADMIN_SERVE=127.0.0.1:8099 go test -run TestServePreview -timeout 0 ./webadmin
//
// The password is "preview".
func TestServePreview(t *testing.T) {
	addr := os.Getenv("WEBADMIN_SERVE")
	if addr == "" {
		t.Skip("set WEBADMIN_SERVE=host:port to serve a preview")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	be := newFakeBackend()
	srv, err := New(Config{Backend: be, Password: func() string { return "preview" }})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 1; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Second):
			}
			be.mu.Lock()
			be.pending = append(be.pending, control.PendingLogin{
				Code: fmt.Sprintf("%012x", i), Hostname: fmt.Sprintf("phone-%d", i), OS: "android",
				MachineKey: "mkey:" + strings.Repeat("ab", 32), Created: time.Now(),
			})
			be.mu.Unlock()
		}
	}()
	hs := &http.Server{Addr: addr, Handler: srv.Handler()}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	t.Logf("serving http://%s (password: preview); interrupt to stop", addr)
	if err := hs.ListenAndServe(); err != http.ErrServerClosed {
		t.Fatal(err)
	}
}
