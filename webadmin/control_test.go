package webadmin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"homenet/control"
	"homenet/control/store"

	"tailscale.com/control/tsp"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// TestWithControlServer approves and denies real interactive logins
// through the web admin, on a real control server.
func TestWithControlServer(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "homenet.db"))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Start()
	cs, err := control.New(ctx, control.Config{
		ServerURL: hs.URL, Prefix4: netip.MustParsePrefix("100.86.0.0/16"), Store: db,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = cs.Handler()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cs.Close()
		db.Close()
	})

	// startLogin has a device log in without a key, as a phone does, and
	// returns the code of its pending login.
	startLogin := func(host string) string {
		t.Helper()
		c, err := tsp.NewClient(tsp.ClientOpts{ServerURL: hs.URL, MachineKey: key.NewMachine()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := c.Register(rctx, tsp.RegisterOpts{NodeKey: key.NewNode(), Hostinfo: &tailcfg.Hostinfo{Hostname: host, OS: "android"}})
		if err != nil || res.AuthURL == "" {
			t.Fatalf("register %s = %+v, %v; want an AuthURL", host, res, err)
		}
		return res.AuthURL[strings.LastIndex(res.AuthURL, "/")+1:]
	}

	h := &harness{t: t, now: time.Now()}
	srv, err := New(Config{Backend: cs, Password: func() string { return testPassword }, Logger: slog.New(slog.DiscardHandler), Now: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
	cookie, csrf := h.login("192.0.2.1")

	pendingCodes := func() []string {
		t.Helper()
		w := h.do("GET", "/api/pending", "192.0.2.1", cookie, nil)
		var got struct{ Pending []pendingLogin }
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("GET /api/pending: %v in %s", err, w.Body)
		}
		var codes []string
		for _, p := range got.Pending {
			codes = append(codes, p.Code+" "+p.Hostname)
		}
		return codes
	}

	pixel := startLogin("pixel")
	if got := pendingCodes(); len(got) != 1 || got[0] != pixel+" pixel" {
		t.Fatalf("pending = %q, want [%s pixel]", got, pixel)
	}
	w := h.do("POST", "/pending/"+pixel+"/approve", "192.0.2.1", cookie, url.Values{"csrf": {csrf}, "return": {"/phone"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/phone" {
		t.Fatalf("approve: status %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	if body := h.do("GET", "/phone", "192.0.2.1", cookie, nil).Body.String(); !strings.Contains(body, "Approved pixel: it joins as pixel with 100.86.0.1.") {
		t.Errorf("the phone page does not say the login was approved:\n%s", body)
	}

	stranger := startLogin("stranger")
	h.do("POST", "/pending/"+stranger+"/deny", "192.0.2.1", cookie, url.Values{"csrf": {csrf}})
	if got := pendingCodes(); len(got) != 0 {
		t.Errorf("pending after approve and deny = %q, want none", got)
	}
	nodes, err := cs.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Name != "pixel" {
		t.Errorf("nodes = %+v, %v; want pixel only", nodes, err)
	}
	if body := h.do("GET", "/devices", "192.0.2.1", cookie, nil).Body.String(); !strings.Contains(body, "100.86.0.1") {
		t.Errorf("the devices page lacks pixel's address:\n%s", body)
	}
}
