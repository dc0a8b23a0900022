package webadmin

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode"

	"homenet/control"

	"tailscale.com/tailcfg"
)

// Backend is what the web admin manages: the control server's admin API,
// waiting interactive logins included. *control.Server implements it.
type Backend = control.Admin

var _ Backend = (*control.Server)(nil)

// Config is what New needs.
type Config struct {
	Backend Backend
	// Password returns the admin password. It is asked at every login, so
	// a changed password takes effect without a restart. While it returns
	// "", every login is refused.
	Password func() string
	// Secure marks the session cookie Secure (and names it with the
	// __Host- prefix); set it when the handler is served over https.
	Secure bool
	// ServerURL is the login server URL devices use; empty means the one
	// in the backend's Status.
	ServerURL string
	// SessionTTL is how long a login lasts; zero means DefaultSessionTTL.
	SessionTTL time.Duration
	Logger     *slog.Logger     // nil: slog.Default()
	Now        func() time.Time // nil: time.Now; for tests
}

// Server is the web admin. Create it with New and serve its Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	pages    map[string]*template.Template
	sessions *sessionStore
	limiter  *loginLimiter
	handler  http.Handler
}

//go:embed templates static
var assets embed.FS

// pageNames are the templates in templates/, each rendered inside
// layout.html with partials.html.
var pageNames = []string{"login", "overview", "devices", "pending", "routes", "keys", "phone", "error"}

// New returns a web admin for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("webadmin: Config.Backend is nil")
	}
	if cfg.Password == nil {
		return nil, errors.New("webadmin: Config.Password is nil")
	}
	if cfg.SessionTTL < 0 {
		return nil, errors.New("webadmin: Config.SessionTTL is negative")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		pages:    map[string]*template.Template{},
		sessions: newSessionStore(cfg.SessionTTL),
		limiter:  newLoginLimiter(),
	}
	funcs := template.FuncMap{
		"rel":      func(t time.Time) string { return relTime(s.now(), t) },
		"abs":      absTime,
		"shortKey": shortKey,
		"join":     join,
		// NodeID's String is "nodeid:N"; paths and forms want N.
		"nodeID": func(id tailcfg.NodeID) int64 { return int64(id) },
		"item": func(p pendingLogin, csrf, ret string) pendingItem {
			return pendingItem{Login: p, CSRF: csrf, Return: ret}
		},
	}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("webadmin: template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the web admin's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// The pages and actions. Every page but the login page needs a session;
// every POST but the login needs the session's CSRF token too, and POSTs
// that browsers mark as coming from another site are refused.
//
//	GET  /                         overview
//	GET  /devices                  devices
//	POST /devices/{id}/rename      name
//	POST /devices/{id}/expire
//	POST /devices/{id}/delete
//	GET  /pending                  pending logins
//	POST /pending/{code}/approve
//	POST /pending/{code}/deny
//	GET  /api/pending              pending logins as JSON, for the phone page
//	GET  /routes                   routes and exit nodes
//	POST /routes/approve           node_id, prefix
//	POST /routes/unapprove         node_id, prefix
//	GET  /keys                     pre-auth keys
//	POST /keys                     reusable, ephemeral, expiry, tags: create; shows the key once
//	POST /keys/{id}/expire
//	GET  /phone                    add a phone
//	GET  /login, POST /login       password
//	POST /logout
//	GET  /static/{style.css,app.js}
//
// Actions redirect (303) to the page in their "return" field, or to their
// own page, with the outcome shown once at its top.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{file}", s.serveStatic)
	mux.HandleFunc("GET /login", s.serveLogin)
	mux.HandleFunc("POST /login", s.serveLogin)
	mux.HandleFunc("POST /logout", s.serveLogout)

	mux.HandleFunc("GET /{$}", s.page("overview", "Overview", s.overviewPage))
	mux.HandleFunc("GET /devices", s.page("devices", "Devices", s.devicesPage))
	mux.HandleFunc("POST /devices/{id}/rename", s.action("/devices", s.renameDevice))
	mux.HandleFunc("POST /devices/{id}/expire", s.action("/devices", s.expireDevice))
	mux.HandleFunc("POST /devices/{id}/delete", s.action("/devices", s.deleteDevice))
	mux.HandleFunc("GET /pending", s.page("pending", "Pending logins", s.pendingPage))
	mux.HandleFunc("POST /pending/{code}/approve", s.action("/pending", s.approveLogin))
	mux.HandleFunc("POST /pending/{code}/deny", s.action("/pending", s.denyLogin))
	mux.HandleFunc("GET /api/pending", s.servePendingJSON)
	mux.HandleFunc("GET /routes", s.page("routes", "Routes", s.routesPage))
	mux.HandleFunc("POST /routes/approve", s.action("/routes", s.setRoute(true)))
	mux.HandleFunc("POST /routes/unapprove", s.action("/routes", s.setRoute(false)))
	mux.HandleFunc("GET /keys", s.page("keys", "Keys", s.keysPage))
	mux.HandleFunc("POST /keys", s.createKey)
	mux.HandleFunc("POST /keys/{id}/expire", s.action("/keys", s.expireKey))
	mux.HandleFunc("GET /phone", s.page("phone", "Add a phone", s.phonePage))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	})

	// Browsers say where a POST comes from; refusing those from other
	// sites backs up the CSRF tokens and covers the login form, which has
	// none: another site must not spend the owner's login attempts and
	// lock the owner out.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("webadmin: cross-origin request refused", "path", r.URL.Path, "source", sourceAddr(r),
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		s.renderError(w, r, http.StatusForbidden, errCSRF)
	}))
	return securityHeaders(cop.Handler(mux))
}

// securityHeaders sets the headers every response gets: nothing here is
// cacheable (pages show keys and device names), framable or scriptable
// from elsewhere.
func securityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// Not no-referrer: under it browsers send "Origin: null" with
		// every form POST and, over plain http, no Sec-Fetch-Site, so the
		// cross-origin check would refuse every form, the login included.
		// same-origin still tells other sites nothing.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name != "style.css" && name != "app.js" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, assets, "static/"+name)
}

// cookieName is the session cookie's name. Under https the __Host- prefix
// makes browsers refuse the cookie unless it is Secure, for this host
// only and for every path, so another site on the LAN cannot plant one.
func (s *Server) cookieName() string {
	if s.cfg.Secure {
		return "__Host-homenet_admin"
	}
	return "homenet_admin"
}

// session returns r's live session, or nil.
func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(s.cookieName())
	if err != nil {
		return nil
	}
	return s.sessions.get(c.Value, s.now())
}

func (s *Server) setSessionCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.cfg.Secure,
		SameSite: http.SameSiteStrictMode,
	})
}

// pageData is what layout.html renders; Data is the page's own.
type pageData struct {
	Page    string // template name, for the navigation
	Title   string
	CSRF    string // empty when logged out
	Flash   *flash
	Pending int // waiting logins, for the navigation
	Data    any
}

// page returns the handler of a page that needs a session. load returns
// the page's data; its error is shown in place of the page.
func (s *Server) page(name, title string, load func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.session(r)
		if sess == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		code, f := http.StatusOK, s.sessions.takeFlash(sess.id)
		data, err := load(r)
		if err != nil {
			s.log.Warn("webadmin: loading page failed", "page", name, "err", err)
			code, name, data = http.StatusInternalServerError, "error", nil
			f = &flash{Message: err.Error(), Error: true}
		}
		s.render(w, r, code, name, pageData{Title: title, CSRF: sess.csrf, Flash: f, Data: data})
	}
}

// render writes page name with d. It renders into a buffer first so that
// a template error is a clean 500, not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, d pageData) {
	d.Page = name
	if d.CSRF != "" {
		if p, err := s.cfg.Backend.PendingLogins(r.Context()); err == nil {
			d.Pending = len(p)
		}
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, d); err != nil {
		s.log.Error("webadmin: rendering page failed", "page", name, "err", err)
		http.Error(w, "rendering "+name+" failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// renderError shows msg on an error page with code.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	d := pageData{Title: http.StatusText(code), Flash: &flash{Message: msg, Error: true}}
	if sess := s.session(r); sess != nil {
		d.CSRF = sess.csrf
	}
	s.render(w, r, code, "error", d)
}

// errCSRF is answered when a form's CSRF token is missing or wrong.
const errCSRF = "This form is stale or came from another site, so nothing was done. Reload the page and try again."

// checkPost reads r's form and returns its session if the session is live
// and the form carries its CSRF token. Otherwise it answers r and returns
// nil.
func (s *Server) checkPost(w http.ResponseWriter, r *http.Request) *session {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Reading the form failed: "+err.Error())
		return nil
	}
	sess := s.session(r)
	if sess == nil {
		s.renderError(w, r, http.StatusUnauthorized, "Your login has ended, so nothing was done. Log in again.")
		return nil
	}
	if !tokenEqual(r.PostForm.Get("csrf"), sess.csrf) {
		s.log.Warn("webadmin: CSRF check failed", "path", r.URL.Path, "source", sourceAddr(r))
		s.renderError(w, r, http.StatusForbidden, errCSRF)
		return nil
	}
	return sess
}

// action returns the handler of a POST that changes something. do
// returns what happened, for the owner; the handler redirects to the
// form's "return" page, or to back.
func (s *Server) action(back string, do func(*http.Request, *session) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.checkPost(w, r)
		if sess == nil {
			return
		}
		msg, err := do(r, sess)
		if err != nil {
			s.log.Warn("webadmin: action failed", "path", r.URL.Path, "source", sourceAddr(r), "err", err)
			s.sessions.setFlash(sess.id, flash{Message: err.Error(), Error: true})
		} else {
			s.log.Info("webadmin: action", "path", r.URL.Path, "source", sourceAddr(r), "result", msg)
			s.sessions.setFlash(sess.id, flash{Message: msg})
		}
		http.Redirect(w, r, returnPath(r.PostForm.Get("return"), back), http.StatusSeeOther)
	}
}

// returnPath is ret if it is one of the pages, else def: a redirect must
// not lead off this site.
func returnPath(ret, def string) string {
	switch ret {
	case "/", "/devices", "/pending", "/routes", "/keys", "/phone":
		return ret
	}
	return def
}

// nextPath is where a login continues: next if it is a path on this site,
// else the overview.
func nextPath(next string) string {
	u, err := url.Parse(next)
	// Browsers drop tabs and newlines from URLs and read a backslash as a
	// slash, so "/\t/evil" and "/\\evil" lead off the site too.
	if err != nil || next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.Contains(next, `\`) || strings.ContainsFunc(next, unicode.IsControl) ||
		u.Scheme != "" || u.Host != "" || strings.HasPrefix(u.Path, "/login") {
		return "/"
	}
	return next
}

// loginData is the data of the login page.
type loginData struct {
	Source      netip.Addr
	Next        string
	Error       string
	NoPassword  bool
	LockedUntil time.Time
}

func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	src := sourceAddr(r)
	d := loginData{Source: src, Next: nextPath(r.URL.Query().Get("next")), NoPassword: s.cfg.Password() == ""}
	if r.Method == http.MethodGet {
		if s.session(r) != nil {
			http.Redirect(w, r, d.Next, http.StatusSeeOther)
			return
		}
		if until := s.limiter.lockedUntil(src, now); !until.IsZero() {
			d.LockedUntil = until
		}
		s.renderLogin(w, r, http.StatusOK, d)
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Reading the form failed: "+err.Error())
		return
	}
	d.Next = nextPath(r.PostForm.Get("next"))
	if until := s.limiter.lockedUntil(src, now); !until.IsZero() {
		// The password is not even checked: a guesser learns nothing.
		s.log.Warn("webadmin: login refused, source locked out", "source", src, "locked_until", until)
		d.LockedUntil = until
		w.Header().Set("Retry-After", fmt.Sprint(int(until.Sub(now).Seconds())+1))
		s.renderLogin(w, r, http.StatusTooManyRequests, d)
		return
	}
	want := s.cfg.Password()
	if !passwordMatches(r.PostForm.Get("password"), want) {
		left, until := s.limiter.fail(src, now)
		s.log.Warn("webadmin: login failed", "source", src, "attempts_left", left, "locked_until", until, "no_password_set", want == "")
		code := http.StatusUnauthorized
		switch {
		case !until.IsZero():
			d.LockedUntil = until
			code = http.StatusTooManyRequests
			w.Header().Set("Retry-After", fmt.Sprint(int(LockoutDuration.Seconds())))
		case want == "":
			d.Error = "No admin password is set, so nobody can log in."
		default:
			d.Error = fmt.Sprintf("Wrong password. %d more %s from this address, then logins from it are refused for %d minutes.",
				left, plural(left, "try", "tries"), int(math.Ceil(LockoutDuration.Minutes())))
		}
		s.renderLogin(w, r, code, d)
		return
	}
	s.limiter.succeed(src)
	if old := s.session(r); old != nil {
		s.sessions.end(old.id) // a login always gets a fresh session ID
	}
	sess := s.sessions.create(src, now)
	s.log.Info("webadmin: login", "source", src)
	s.setSessionCookie(w, sess.id, int(s.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, d loginData) {
	s.render(w, r, code, "login", pageData{Title: "Log in", Data: d})
}

func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	sess := s.checkPost(w, r)
	if sess == nil {
		return
	}
	s.sessions.end(sess.id)
	s.setSessionCookie(w, "", -1)
	s.log.Info("webadmin: logout", "source", sourceAddr(r))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
