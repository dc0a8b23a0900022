package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"homenet/appliance"
	"homenet/e2e/lab"
	"homenet/webadmin"
)

// TestWebAdminBrowser drives the web admin as its owner would, in headless
// Chromium on the gateway's LAN (192.168.1.10), against `homenet serve`
// with the gateway agent on: it logs in with the password from the state
// directory, sees the overview, approves a real tailscaled's interactive
// login from the "Add a phone" page as the page's poll lists it, creates a
// key and reads it back from the QR code in a screenshot, joins a second
// phone with it, expires it, deletes that phone and watches it leave the
// first phone's netmap, and finally gets itself locked out by five wrong
// passwords. Every page is saved at 1280 and 390 px wide (see
// newShooter); a page that scrolls sideways at either width fails the test.
func TestWebAdminBrowser(t *testing.T) {
	t.Parallel()
	lab.ChromiumBinary(t) // skip before building anything
	tm := newTimer(t)
	n := newGwNet(t, gwOpts{})
	n.start(t)
	l := n.lab
	nat2 := l.NATRouter("nat2", l.Internet().Link(n.opts.WAN+".12/24").Via(n.opts.WAN+".254"), "10.2.0.1/24", lab.NATOpts{})
	p1, p2 := n.phone, l.Phone(l.Host("p2", nat2.LAN.Link("10.2.0.2/24")))
	tm.mark("lab, homenet serve with the gateway online, two tailscaleds")

	b := n.lanHost.Browser()
	ctx := b.Ctx
	tm.mark("chromium started in the LAN host")
	shots := newShooter(t)
	web := fmt.Sprintf("http://192.168.1.1:%d", appliance.DefaultWebPort)
	var password string
	lab.WaitFor(t, 10*time.Second, "the admin password file", func() error {
		raw, err := os.ReadFile(filepath.Join(n.hn.StateDir, "admin-password"))
		password = strings.TrimSpace(string(raw))
		if err == nil && password == "" {
			err = fmt.Errorf("%s is empty", filepath.Join(n.hn.StateDir, "admin-password"))
		}
		return err
	})
	doIn := func(c context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for try := 1; ; try++ {
			err := lab.Do(c, 30*time.Second, actions...)
			if err == nil {
				return
			}
			if lab.StaleNode(err) && try < 5 {
				t.Logf("%s: %v; trying again", what, err)
				time.Sleep(200 * time.Millisecond)
				continue
			}
			loc, _ := lab.Eval[string](c, `location.href`)
			t.Fatalf("%s (at %s): %v", what, loc, err)
		}
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		doIn(ctx, what, actions...)
	}
	wait := func(c context.Context, d time.Duration, what, expr string) string {
		t.Helper()
		v, err := lab.WaitJS(c, d, what, expr)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	flash := `document.querySelector("main .flash")?.textContent`

	// Log in.
	do("opening the web admin", chromedp.Navigate(web+"/"))
	wait(ctx, 10*time.Second, "the login page (redirected from /)",
		`location.pathname === "/login" && new URLSearchParams(location.search).get("next") === "/" && document.querySelector("input[name=password]")`)
	shots.shoot(ctx, "login")
	do("typing the password", chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password))
	do("logging in", lab.SubmitClick(chromedp.CSS(`form.card button[type=submit]`)))
	wait(ctx, 10*time.Second, "the overview after logging in", `location.pathname === "/" && document.querySelector("h1").textContent === "Overview"`)
	overview := wait(ctx, time.Second, "the overview's text", `document.querySelector("main").innerText`)
	for _, want := range []string{n.hn.URL, "Gateway", gwLANPrefix, "Relay"} {
		if !strings.Contains(overview, want) {
			t.Errorf("the overview does not mention %q:\n%s", want, overview)
		}
	}
	shots.shoot(ctx, "overview")
	tm.mark("logged in, overview")

	// Add a phone: the page is open before the phone asks, so its poll of
	// /api/pending must bring the login in.
	do("opening Add a phone", chromedp.Navigate(web+"/phone"))
	wait(ctx, 10*time.Second, "the phone page's first poll", `document.querySelector("#live-status").textContent.startsWith("Checked") && document.querySelector("#live-pending .waiting")`)
	phoneShots := shots.shoot(ctx, "phone-waiting")
	for _, v := range []lab.Viewport{lab.Desktop, lab.Phone390} {
		if got, err := lab.DecodeQR(phoneShots[v.Name]); err != nil || got != n.hn.URL {
			t.Errorf("QR code on the phone page at %d px: %q, %v; want the login server URL %q", v.Width, got, err, n.hn.URL)
		}
	}
	authURL, up, err := p1.UpInteractive(n.hn.URL)
	if err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	code := authURL[strings.LastIndex(authURL, "/")+1:]
	card := fmt.Sprintf(`#live-pending article.pending[data-code=%q]`, code)
	host := wait(ctx, 15*time.Second, "the phone's login on the Add a phone page", fmt.Sprintf(`document.querySelector(%q + " h2")?.textContent`, card))
	t.Logf("the login of %s (code %s) showed on the phone page %v after tailscale up printed its URL", host, code, time.Since(asked).Round(10*time.Millisecond))
	if host != p1.Hostname {
		t.Errorf("the waiting login is named %q, want %q", host, p1.Hostname)
	}
	shots.shoot(ctx, "phone-pending")
	do("opening Pending", chromedp.Navigate(web+"/pending"))
	wait(ctx, 5*time.Second, "the login on the Pending page", fmt.Sprintf(`document.querySelector(%q)`, fmt.Sprintf(`article.pending[data-code=%q]`, code)))
	shots.shoot(ctx, "pending")

	do("opening Add a phone again", chromedp.Navigate(web+"/phone"))
	// Approve once the page's first poll has redrawn the list, so that the
	// button is not replaced under the click.
	wait(ctx, 10*time.Second, "the phone page's first poll", fmt.Sprintf(`document.querySelector("#live-status").textContent.startsWith("Checked") && document.querySelector(%q)`, card))
	do("approving the login", lab.SubmitClick(chromedp.CSS(card+` form[action$="/approve"] button`)))
	msg := wait(ctx, 10*time.Second, "the approval's message", `location.pathname === "/phone" && `+flash)
	if !strings.Contains(msg, "Approved "+p1.Hostname) {
		t.Errorf("after approving: %q, want it to say Approved %s", msg, p1.Hostname)
	}
	if err := up.Wait(60 * time.Second); err != nil {
		t.Fatalf("tailscale up after the approval: %v\n%s", err, up.Log())
	}
	if err := p1.WaitRunning(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	tm.mark("approved p1's interactive login in the browser; p1 Running")
	lab.WaitFor(t, 30*time.Second, "homenet nodes list to show p1 online", func() error {
		nd, err := n.hn.Node(p1.Hostname)
		if err == nil && !nd.Online {
			err = fmt.Errorf("%s is offline", nd.Name)
		}
		return err
	})
	p1Node, _ := n.hn.Node(p1.Hostname)
	lab.WaitFor(t, 30*time.Second, "the Devices page to show p1 online", func() error {
		if err := lab.Do(ctx, 10*time.Second, chromedp.Navigate(web+"/devices")); err != nil {
			return err
		}
		st, err := lab.Eval[string](ctx, fmt.Sprintf(`document.querySelector("#device-%d .state")?.textContent || "no card for the device"`, p1Node.ID))
		if err == nil && st != "online" {
			err = fmt.Errorf("p1 is %q", st)
		}
		return err
	})
	shots.shoot(ctx, "devices")
	tm.mark("p1 online on the Devices page")

	// A key, read back from its QR code.
	do("opening Keys", chromedp.Navigate(web+"/keys"))
	do("ticking Reusable", chromedp.Click(chromedp.CSS(`input[name=reusable]`)))
	if on, _ := lab.Eval[bool](ctx, `document.querySelector("input[name=reusable]").checked`); !on {
		t.Fatal("clicking the Reusable box did not tick it")
	}
	do("creating a reusable key", lab.SubmitClick(chromedp.CSS(`form[action="/keys"] button[type=submit]`)))
	key := wait(ctx, 10*time.Second, "the new key", `document.querySelector(".created .copy")?.value`)
	prefix := strings.TrimPrefix(wait(ctx, time.Second, "the new key's name", `document.querySelector(".created h2").textContent`), "New key ")
	command := wait(ctx, time.Second, "the command", `document.querySelectorAll(".created .copy")[1].value`)
	if !strings.HasPrefix(command, "tailscale up ") || !strings.Contains(command, "--login-server "+n.hn.URL) ||
		!(strings.HasSuffix(command, " --auth-key "+key) || strings.HasSuffix(command, " --authkey "+key)) {
		t.Errorf("the command shown is %q; want it to name %s and the key", command, n.hn.URL)
	}
	keyShots := shots.shoot(ctx, "keys-new")
	for _, v := range []lab.Viewport{lab.Desktop, lab.Phone390} {
		got, err := lab.DecodeQR(keyShots[v.Name])
		if err != nil {
			t.Fatalf("the new key's QR code at %d px: %v", v.Width, err)
		}
		if got != key {
			t.Fatalf("the new key's QR code at %d px says %q; the key shown is %q", v.Width, got, key)
		}
	}
	tm.mark("created a key; its QR code decodes to it")
	if err := p2.Up(n.hn.URL, key); err != nil {
		t.Fatalf("tailscale up with the key from the QR code: %v", err)
	}
	if err := p1.WaitPeers(joinTimeout, p2); err != nil {
		t.Fatal(err)
	}
	tm.mark("p2 joined with the key; p1 sees it")

	// Expire it.
	do("opening Keys again", chromedp.Navigate(web+"/keys"))
	if html := wait(ctx, 5*time.Second, "the keys page", `location.pathname === "/keys" && document.documentElement.outerHTML`); strings.Contains(html, key) {
		t.Errorf("the keys page shows the key again after a reload")
	}
	keyCard := fmt.Sprintf(`[...document.querySelectorAll("article.key")].find(a => a.querySelector("h3 code")?.textContent === %q)`, prefix)
	if st := wait(ctx, 5*time.Second, "the new key's card", keyCard+`?.querySelector(".state").textContent`); st != "valid" {
		t.Errorf("key %s is %q before expiring it, want valid", prefix, st)
	}
	do("expiring the key", lab.SubmitClick(chromedp.JSPath(keyCard+`.querySelector("form[action$='/expire'] button")`)))
	msg = wait(ctx, 10*time.Second, "the expiry's message", `location.pathname === "/keys" && `+flash)
	if !strings.Contains(msg, "Expired key "+prefix) {
		t.Errorf("after expiring: %q, want it to say Expired key %s", msg, prefix)
	}
	if !slices.ContainsFunc(b.Dialogs(), func(m string) bool { return strings.HasPrefix(m, "Expire key "+prefix+"?") }) {
		t.Errorf("no confirmation was asked before expiring the key; dialogs: %q", b.Dialogs())
	}
	if st := wait(ctx, 5*time.Second, "the key's card", keyCard+`?.querySelector(".state").textContent`); st != "expired" {
		t.Errorf("key %s is %q after expiring it, want expired", prefix, st)
	}
	if has, _ := lab.Eval[bool](ctx, `!!(`+keyCard+`.querySelector("form"))`); has {
		t.Errorf("the expired key still has an Expire button")
	}
	shots.shoot(ctx, "keys")
	tm.mark("expired the key")

	do("opening Routes", chromedp.Navigate(web+"/routes"))
	routes := wait(ctx, 5*time.Second, "the routes page", `location.pathname === "/routes" && document.querySelector("main").innerText`)
	for _, want := range []string{gwLANPrefix, "exit node"} {
		if !strings.Contains(routes, want) {
			t.Errorf("the routes page does not mention %q:\n%s", want, routes)
		}
	}
	shots.shoot(ctx, "routes")

	// Delete p2; p1 must stop seeing it.
	p2Node, err := n.hn.Node(p2.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	do("opening Devices", chromedp.Navigate(web+"/devices"))
	wait(ctx, 5*time.Second, "p2 on the Devices page", fmt.Sprintf(`document.getElementById("device-%d")`, p2Node.ID))
	shots.shoot(ctx, "devices-two-phones")
	do("deleting p2", lab.SubmitClick(chromedp.CSS(fmt.Sprintf(`#device-%d form[action$="/delete"] button`, p2Node.ID))))
	deleted := time.Now()
	msg = wait(ctx, 10*time.Second, "the deletion's message", fmt.Sprintf(`location.pathname === "/devices" && !document.getElementById("device-%d") && %s`, p2Node.ID, flash))
	if !strings.Contains(msg, "Deleted "+p2Node.Name) {
		t.Errorf("after deleting: %q, want it to say Deleted %s", msg, p2Node.Name)
	}
	if !slices.ContainsFunc(b.Dialogs(), func(m string) bool { return strings.HasPrefix(m, "Delete "+p2Node.Name+"?") }) {
		t.Errorf("no confirmation was asked before deleting; dialogs: %q", b.Dialogs())
	}
	lab.WaitFor(t, 30*time.Second, "p2 to leave p1's netmap", func() error {
		st, err := p1.Status()
		if err == nil && lab.Peer(st, p2.Hostname) != nil {
			err = fmt.Errorf("p1 still sees %s", p2.Hostname)
		}
		return err
	})
	t.Logf("p2 left p1's netmap %v after the Delete click", time.Since(deleted).Round(10*time.Millisecond))
	if _, err := n.hn.Node(p2.Hostname); err == nil {
		t.Errorf("homenet nodes list still lists %s", p2.Hostname)
	}
	tm.mark("deleted p2 in the browser; gone from p1's netmap")

	do("opening a page that does not exist", chromedp.Navigate(web+"/no-such-page"))
	wait(ctx, 5*time.Second, "the error page", `document.querySelector("main .flash.error")?.textContent.includes("There is no page at /no-such-page")`)
	shots.shoot(ctx, "error")

	// Lock ourselves out. A second tab opens the login form before the
	// lockout, as a tab left open would, for the sixth try.
	do("logging out", lab.SubmitClick(chromedp.CSS(`form.logout button`)))
	wait(ctx, 10*time.Second, "the login page after logging out", `location.pathname === "/login" && document.querySelector("input[name=password]")`)
	tab2, cancel := chromedp.NewContext(ctx)
	defer cancel()
	// The first Do opens the tab, for as long as its context lives: no
	// timeout there.
	if err := chromedp.Do(tab2); err != nil {
		t.Fatal(err)
	}
	doIn(tab2, "opening the login page in a second tab", chromedp.Navigate(web+"/login"))
	wait(tab2, 10*time.Second, "the login form in a second tab", `document.querySelector("input[name=password]")`)
	for i := 1; i <= webadmin.MaxLoginFailures; i++ {
		do(fmt.Sprintf("typing wrong password %d", i), chromedp.SendKeys(chromedp.CSS(`input[name=password]`), fmt.Sprintf("wrong-%d", i)))
		do(fmt.Sprintf("submitting wrong password %d", i), lab.SubmitClick(chromedp.CSS(`form.card button[type=submit]`)))
		left := webadmin.MaxLoginFailures - i
		if left > 0 {
			msg := wait(ctx, 10*time.Second, fmt.Sprintf("the message after wrong password %d", i),
				fmt.Sprintf(`document.querySelector("main .flash.error")?.textContent.includes("%d more tr") && document.querySelector("main .flash.error").textContent`, left))
			if !strings.HasPrefix(msg, "Wrong password.") {
				t.Errorf("after wrong password %d: %q", i, msg)
			}
			if i == 1 {
				shots.shoot(ctx, "login-wrong")
			}
			continue
		}
		msg := wait(ctx, 10*time.Second, "the lockout after the last wrong password", `document.querySelector("main .flash.error")?.textContent.includes("Too many wrong passwords") && document.querySelector("main .flash.error").textContent`)
		if !strings.Contains(msg, gwLANHostIP) {
			t.Errorf("the lockout message does not name the address %s: %q", gwLANHostIP, msg)
		}
		if form, _ := lab.Eval[bool](ctx, `!!document.querySelector("input[name=password]")`); form {
			t.Errorf("the locked-out login page still offers the password form")
		}
		shots.shoot(ctx, "login-locked")
	}
	tm.mark(fmt.Sprintf("%d wrong passwords: locked out", webadmin.MaxLoginFailures))
	doIn(tab2, "typing the right password in the second tab", chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password))
	doIn(tab2, "logging in in the second tab", lab.SubmitClick(chromedp.CSS(`form.card button[type=submit]`)))
	msg = wait(tab2, 10*time.Second, "the refusal of the right password", `location.pathname === "/login" && document.querySelector("main .flash.error")?.textContent.includes("Too many wrong passwords") && document.querySelector("main .flash.error").textContent`)
	t.Logf("the right password, sixth: %s", msg)
	doIn(tab2, "opening the overview in the second tab", chromedp.Navigate(web+"/"))
	wait(tab2, 10*time.Second, "/ to still lead to the login page", `location.pathname === "/login" && document.querySelector("main .flash.error")?.textContent.includes("Too many wrong passwords")`)
	tm.mark("the right password refused while locked out")
	tm.summary()
}

// timer logs how long each stage of a scenario took.
type timer struct {
	t           *testing.T
	start, last time.Time
	lines       []string
}

func newTimer(t *testing.T) *timer {
	now := time.Now()
	return &timer{t: t, start: now, last: now}
}

func (tm *timer) mark(what string) {
	now := time.Now()
	tm.lines = append(tm.lines, fmt.Sprintf("%8v  %s", now.Sub(tm.last).Round(10*time.Millisecond), what))
	tm.t.Logf("%v: %s", now.Sub(tm.last).Round(10*time.Millisecond), what)
	tm.last = now
}

func (tm *timer) summary() {
	tm.t.Logf("timings (total %v):\n%s", time.Since(tm.start).Round(10*time.Millisecond), strings.Join(tm.lines, "\n"))
}

// shooter saves full-page screenshots of a tab at the widths the web admin
// must work at, into $HOMENET_E2E_SCREENSHOTS or, by default,
// /tmp/homenet-e2e-screenshots/TEST (emptied first): they outlive the test,
// to be looked at.
type shooter struct {
	t   *testing.T
	dir string
	n   int
}

func newShooter(t *testing.T) *shooter {
	dir := os.Getenv("HOMENET_E2E_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "homenet-e2e-screenshots", t.Name())
		os.RemoveAll(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", dir)
	return &shooter{t: t, dir: dir}
}

// shoot saves the page in the tab of ctx at each lab viewport as
// NN-name-WIDTH.png and returns the PNGs by viewport name. A page wider
// than the window fails the test. The tab is left at desktop size.
func (s *shooter) shoot(ctx context.Context, name string) map[string][]byte {
	s.t.Helper()
	s.n++
	shots := map[string][]byte{}
	defer lab.SetViewport(ctx, lab.Desktop)
	for _, v := range []lab.Viewport{lab.Desktop, lab.Phone390} {
		if err := lab.SetViewport(ctx, v); err != nil {
			s.t.Fatalf("screenshot %s: %v", name, err)
		}
		if msg, err := lab.Overflow(ctx); err != nil {
			s.t.Errorf("screenshot %s at %d px: measuring the page: %v", name, v.Width, err)
		} else if msg != "" {
			s.t.Errorf("the %s page at %d px scrolls sideways: %s", name, v.Width, msg)
		}
		png, err := lab.FullScreenshot(ctx)
		if err != nil {
			s.t.Fatalf("screenshot %s at %d px: %v", name, v.Width, err)
		}
		file := filepath.Join(s.dir, fmt.Sprintf("%02d-%s-%s.png", s.n, name, strconv.FormatInt(v.Width, 10)))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			s.t.Fatal(err)
		}
		shots[v.Name] = png
	}
	return shots
}
