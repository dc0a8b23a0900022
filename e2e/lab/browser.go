package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/png" // for image.Decode
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// A headless Chromium inside a lab host, driven with chromedp. chromedp
// talks to it over a pipe (--remote-debugging-pipe: file descriptors 3 and
// 4, which nsenter passes on), not over a DevTools port, so nothing has to
// cross from the test process's network namespace into the host's: the
// browser lives entirely in the host's network (and mount) namespace and
// sees the lab's addresses as any client there does.

// NeedsChromiumMessage is the reason browser scenarios skip without
// Chromium.
const NeedsChromiumMessage = "e2e: chromium not found; install it: apt-get install -y --no-install-recommends chromium"

// ChromiumBinary returns the path of Chromium ($HOMENET_E2E_CHROMIUM, or
// Debian's chromium on PATH), skipping the test if there is none.
func ChromiumBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HOMENET_E2E_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip(NeedsChromiumMessage)
	return ""
}

// Browser is a headless Chromium running in a host. Ctx is the chromedp
// context of its first tab; use it with chromedp.Do and chromedp.Run, or
// derive shorter-lived contexts from it (the browser lives until the test
// ends). JavaScript dialogs (window.confirm, …) are accepted as they open
// and recorded (see Dialogs).
type Browser struct {
	Host    *Host
	Ctx     context.Context
	LogPath string

	mu      sync.Mutex
	dialogs []string
}

// Browser starts headless Chromium in h, with a fresh profile in h's
// directory and a 1280×800 window, and waits until it answers.
func (h *Host) Browser() *Browser {
	t := h.lab.t
	t.Helper()
	bin := ChromiumBinary(t)
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.Dir, "chromium")
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	b := &Browser{Host: h, LogPath: filepath.Join(dir, "chromium.log")}
	logf, err := os.Create(b.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(h.anchor.Process.Pid)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.NoSandbox, // root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true), // whatever the test process's environment says
		chromedp.WindowSize(1280, 800),
		// Keep its caches and NSS database out of root's home.
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+home+"/.config", "XDG_CACHE_HOME="+home+"/.cache"),
		chromedp.CombinedOutput(logf),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Run it inside h: nsenter enters the namespaces and execs
			// Chromium, keeping the pipe's descriptors and the pid.
			cmd.Args = append([]string{nsenter, "-t", pid, "-n", "-m", "--"}, cmd.Args...)
			cmd.Path = nsenter
			// What chromedp does by default: the browser dies with us.
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b.Ctx = ctx
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
		logf.Close()
	})
	h.lab.OnFailure(func() {
		out, _ := os.ReadFile(b.LogPath)
		lines := strings.SplitAfter(string(out), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("---- chromium on %s, last lines of %s ----\n%s", h.Name, b.LogPath, strings.Join(lines, ""))
	})

	start := time.Now()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // starts the browser and opens the tab
	select {
	case err = <-started:
	case <-time.After(60 * time.Second):
		err = errors.New("no answer after 60 s")
	}
	if err != nil {
		out, _ := os.ReadFile(b.LogPath)
		t.Fatalf("starting chromium in %s: %v\n%s", h.Name, err, out)
	}
	t.Logf("lab: chromium started in %s in %v", h.Name, time.Since(start).Round(time.Millisecond))

	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b
}

// Dialogs returns the messages of the JavaScript dialogs the first tab
// showed so far.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Do runs actions in the tab of ctx (b.Ctx or a tab derived from it),
// giving up after timeout.
func Do(ctx context.Context, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return chromedp.Do(tctx, actions...)
}

// SubmitClick is an action that clicks sel, a button that submits a form,
// and waits for the page the form leads to to load. Waiting for the load
// keeps the next query off the replaced document's nodes.
func SubmitClick[S chromedp.Selectable](sel S) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(sel))(ctx, t)
		return chromedp.Void{}, err
	}
}

// StaleNode reports whether err says chromedp acted on a node of a
// document the page had just replaced: chromedp learns of a new document
// from an event, which can come after the page's own scripts see it. The
// action did nothing, and trying it again is safe.
func StaleNode(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "node with given id") || strings.Contains(msg, "does not belong to the document")
}

// Eval evaluates a JavaScript expression in the tab of ctx and decodes its
// value into T, giving up after 10 s.
func Eval[T any](ctx context.Context, expr string) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(tctx, chromedp.Evaluate[T](expr))
}

// WaitJS evaluates expr in the tab of ctx until it returns a non-empty
// string, and returns that string. An error thrown, or a navigation under
// way, counts as not yet: expr can wait for the page a form submission
// leads to. The error names what and expr's last answer.
func WaitJS(ctx context.Context, timeout time.Duration, what, expr string) (string, error) {
	var got string
	err := Poll(timeout, func() error {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		v, err := chromedp.Run(ectx, chromedp.Evaluate[string](`(() => { try { return String((`+expr+`) || ""); } catch (e) { return ""; } })()`))
		if err != nil {
			return err
		}
		if v == "" {
			return errors.New("not yet")
		}
		got = v
		return nil
	})
	if err != nil {
		loc, _ := Eval[string](ctx, `location.href + " (" + document.title + "): " + document.body.innerText.slice(0, 600)`)
		return "", fmt.Errorf("waiting for %s: %w; the page is %s", what, err, loc)
	}
	return got, nil
}

// Viewport is a window size screenshots are taken at.
type Viewport struct {
	Name          string
	Width, Height int64
	Mobile        bool // as a phone: the page's meta viewport applies
}

// The widths the web admin must work at.
var (
	Desktop  = Viewport{Name: "desktop", Width: 1280, Height: 800}
	Phone390 = Viewport{Name: "phone", Width: 390, Height: 844, Mobile: true}
)

// SetViewport resizes the tab of ctx to v (no reload).
func SetViewport(ctx context.Context, v Viewport) error {
	var opts []chromedp.EmulateViewportOption
	if v.Mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulatePortrait)
	}
	return Do(ctx, 10*time.Second, chromedp.EmulateViewport(v.Width, v.Height, opts...))
}

// Overflow reports, for the page in the tab of ctx, whether it is wider
// than the window (so that it scrolls sideways), and the elements that stick
// out on the right.
func Overflow(ctx context.Context) (string, error) {
	return Eval[string](ctx, `(() => {
  const w = document.documentElement.clientWidth, sw = document.documentElement.scrollWidth;
  if (sw <= w) return "";
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > w + 0.5) {
      let name = el.tagName.toLowerCase();
      if (el.id) name += "#" + el.id;
      if (el.classList.length) name += "." + [...el.classList].join(".");
      out.push(name + " (right edge " + Math.round(r.right) + ")");
    }
  }
  return "page is " + sw + " px wide in a " + w + " px window; sticking out: " + out.slice(0, 12).join(", ");
})()`)
}

// FullScreenshot returns a PNG of the whole page in the tab of ctx.
func FullScreenshot(ctx context.Context) ([]byte, error) {
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(tctx, chromedp.FullScreenshot(100))
}

// DecodeQR finds a QR code in a PNG image and returns its text.
func DecodeQR(img []byte) (string, error) {
	m, _, err := image.Decode(bytes.NewReader(img))
	if err != nil {
		return "", fmt.Errorf("decoding the image: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(m)
	if err != nil {
		return "", err
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	if err != nil {
		return "", fmt.Errorf("no QR code found in the %v image: %w", m.Bounds().Size(), err)
	}
	return res.GetText(), nil
}
