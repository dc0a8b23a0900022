package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"homenet/control/store"
	"tailscale.com/tailcfg"
)

// The admin API is JSON over HTTP on a unix socket (see ListenAdmin). Its
// endpoints mirror the Admin interface one to one:
//
//	POST   /v1/keys                 AuthKeyOptions        → CreatedAuthKey
//	GET    /v1/keys                                       → []AuthKeyInfo
//	POST   /v1/keys/{id}/expire                           → 204
//	DELETE /v1/keys/{id}                                  → 204
//	GET    /v1/nodes                                      → []NodeInfo
//	POST   /v1/nodes/approve        {"code"}              → NodeInfo
//	GET    /v1/nodes/pending                              → []PendingLogin
//	POST   /v1/nodes/deny           {"code"}              → 204
//	POST   /v1/nodes/{id}/rename    {"name"}              → 204
//	POST   /v1/nodes/{id}/expire                          → 204
//	DELETE /v1/nodes/{id}                                 → 204
//	GET    /v1/routes                                     → []RouteInfo
//	POST   /v1/routes/approve       {"node_id","prefix"}  → 204
//	POST   /v1/routes/unapprove     {"node_id","prefix"}  → 204
//	GET    /v1/status                                     → Status
//
// Errors are {"error": "..."} with status 400 for bad input (or an Admin
// error wrapping ErrInvalid), 404 when the Admin error wraps
// store.ErrNotFound, and 500 otherwise.

// ErrInvalid is wrapped by Admin implementations when a request is refused
// because of its arguments (an unusable name, a prefix the node does not
// advertise, ...). The admin API answers such errors with 400 and
// AdminClient returns errors that match it with errors.Is.
var ErrInvalid = errors.New("invalid argument")

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 64 << 10

// CreatedAuthKey is the answer to creating a pre-auth key: its description
// and, once only, its secret.
type CreatedAuthKey struct {
	AuthKeyInfo
	Key string `json:"key"`
}

// approveRequest is the body of POST /v1/nodes/approve.
type approveRequest struct {
	Code string `json:"code"`
}

// renameRequest is the body of POST /v1/nodes/{id}/rename.
type renameRequest struct {
	Name string `json:"name"`
}

// routeRequest is the body of POST /v1/routes/approve and /unapprove.
type routeRequest struct {
	NodeID tailcfg.NodeID `json:"node_id"`
	Prefix netip.Prefix   `json:"prefix"`
}

// errorResponse is the body of every admin API error.
type errorResponse struct {
	Error string `json:"error"`
}

// AdminHandler returns the admin API (see the endpoint list above) backed by
// a. It logs failures of a, not bad requests, to logger (nil: discard).
func AdminHandler(a Admin, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &adminHandler{a: a, logger: logger, mux: http.NewServeMux()}
	h.handle("POST /v1/keys", h.createKey)
	h.handle("GET /v1/keys", h.listKeys)
	h.handle("POST /v1/keys/{id}/expire", h.expireKey)
	h.handle("DELETE /v1/keys/{id}", h.deleteKey)
	h.handle("GET /v1/nodes", h.listNodes)
	h.handle("POST /v1/nodes/approve", h.approveNode)
	h.handle("GET /v1/nodes/pending", h.pendingLogins)
	h.handle("POST /v1/nodes/deny", h.denyNode)
	h.handle("POST /v1/nodes/{id}/rename", h.renameNode)
	h.handle("POST /v1/nodes/{id}/expire", h.expireNode)
	h.handle("DELETE /v1/nodes/{id}", h.deleteNode)
	h.handle("GET /v1/routes", h.listRoutes)
	h.handle("POST /v1/routes/approve", h.routeSetter(true))
	h.handle("POST /v1/routes/unapprove", h.routeSetter(false))
	h.handle("GET /v1/status", h.status)
	return h
}

// adminHandler routes admin API requests to an Admin.
type adminHandler struct {
	a      Admin
	logger *slog.Logger
	mux    *http.ServeMux
}

// handle registers an endpoint whose function returns the response body (nil
// for 204) or an error to be mapped to a status.
func (h *adminHandler) handle(pattern string, f func(*http.Request) (any, error)) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		res, err := f(r)
		if err != nil {
			code := errorStatus(err)
			if code >= 500 {
				h.logger.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeJSON(w, code, errorResponse{Error: err.Error()})
			return
		}
		if res == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// ServeHTTP serves r, answering unknown paths and methods with JSON errors
// like every other failure.
func (h *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		w = &jsonErrorWriter{ResponseWriter: w, what: r.Method + " " + r.URL.Path}
	}
	h.mux.ServeHTTP(w, r)
}

func (h *adminHandler) createKey(r *http.Request) (any, error) {
	var opts AuthKeyOptions
	if err := decodeBody(r, &opts); err != nil {
		return nil, err
	}
	if opts.Expiry < 0 {
		return nil, invalidf("expiry %v is negative", opts.Expiry)
	}
	for _, tag := range opts.Tags {
		if err := tailcfg.CheckTag(tag); err != nil {
			return nil, invalidf("tag %q: %v", tag, err)
		}
	}
	info, key, err := h.a.CreateAuthKey(r.Context(), opts)
	if err != nil {
		return nil, err
	}
	return CreatedAuthKey{AuthKeyInfo: info, Key: key}, nil
}

func (h *adminHandler) listKeys(r *http.Request) (any, error) {
	keys, err := h.a.AuthKeys(r.Context())
	return nonNil(keys), err
}

func (h *adminHandler) expireKey(r *http.Request) (any, error) {
	id, err := pathID(r, "key")
	if err != nil {
		return nil, err
	}
	return nil, h.a.ExpireAuthKey(r.Context(), id)
}

func (h *adminHandler) deleteKey(r *http.Request) (any, error) {
	id, err := pathID(r, "key")
	if err != nil {
		return nil, err
	}
	return nil, h.a.DeleteAuthKey(r.Context(), id)
}

func (h *adminHandler) listNodes(r *http.Request) (any, error) {
	nodes, err := h.a.Nodes(r.Context())
	return nonNil(nodes), err
}

func (h *adminHandler) approveNode(r *http.Request) (any, error) {
	var req approveRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.Code == "" {
		return nil, invalidf("code must not be empty")
	}
	n, err := h.a.ApproveRegistration(r.Context(), req.Code)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (h *adminHandler) pendingLogins(r *http.Request) (any, error) {
	p, err := h.a.PendingLogins(r.Context())
	return nonNil(p), err
}

func (h *adminHandler) denyNode(r *http.Request) (any, error) {
	var req approveRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.Code == "" {
		return nil, invalidf("missing code")
	}
	return nil, h.a.DenyRegistration(r.Context(), req.Code)
}

func (h *adminHandler) renameNode(r *http.Request) (any, error) {
	id, err := pathID(r, "node")
	if err != nil {
		return nil, err
	}
	var req renameRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, invalidf("name must not be empty")
	}
	return nil, h.a.RenameNode(r.Context(), tailcfg.NodeID(id), req.Name)
}

func (h *adminHandler) expireNode(r *http.Request) (any, error) {
	id, err := pathID(r, "node")
	if err != nil {
		return nil, err
	}
	return nil, h.a.ExpireNode(r.Context(), tailcfg.NodeID(id))
}

func (h *adminHandler) deleteNode(r *http.Request) (any, error) {
	id, err := pathID(r, "node")
	if err != nil {
		return nil, err
	}
	return nil, h.a.DeleteNode(r.Context(), tailcfg.NodeID(id))
}

func (h *adminHandler) listRoutes(r *http.Request) (any, error) {
	routes, err := h.a.Routes(r.Context())
	return nonNil(routes), err
}

// routeSetter returns the endpoint that approves (or unapproves) a route.
func (h *adminHandler) routeSetter(approved bool) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		var req routeRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if req.NodeID <= 0 {
			return nil, invalidf("node_id %d is not a positive integer", req.NodeID)
		}
		if err := CheckRoute(req.Prefix); err != nil {
			return nil, err
		}
		return nil, h.a.SetRouteApproved(r.Context(), req.NodeID, req.Prefix, approved)
	}
}

func (h *adminHandler) status(r *http.Request) (any, error) {
	st, err := h.a.Status(r.Context())
	if err != nil {
		return nil, err
	}
	return st, nil
}

// CheckRoute reports whether p can be approved as a route: valid and without
// host bits. Its errors wrap ErrInvalid.
func CheckRoute(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return invalidf("prefix is missing or not a CIDR prefix")
	case p != p.Masked():
		return invalidf("prefix %s has host bits set; did you mean %s?", p, p.Masked())
	}
	return nil
}

// pathID parses the {id} path value of r as a positive integer. what names
// the object in the error.
func pathID(r *http.Request, what string) (int64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, invalidf("%s ID %q is not a positive integer", what, s)
	}
	return id, nil
}

// decodeBody decodes the single JSON value in r's body into v, rejecting
// unknown fields and trailing data. Its errors match ErrInvalid, or
// errBodyTooLarge.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return fmt.Errorf("request body: %w (limit %d bytes)", errBodyTooLarge, mbe.Limit)
	case errors.Is(err, io.EOF):
		return invalidf("request body is empty; want a JSON object")
	}
	return invalidf("request body: %v", err)
}

// invalidError is an error caused by the request's arguments.
type invalidError struct{ msg string }

func (e invalidError) Error() string        { return e.msg }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

// invalidf returns an error with the formatted message that matches
// ErrInvalid.
func invalidf(format string, args ...any) error {
	return invalidError{msg: fmt.Sprintf(format, args...)}
}

// errBodyTooLarge is answered with 413.
var errBodyTooLarge = errors.New("too large")

// errorStatus maps an error from an endpoint to an HTTP status.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// nonNil returns s, or an empty slice for nil, so that lists encode as [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writeJSON writes v as the JSON response body with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the client sees a truncated body if this fails
}

// jsonErrorWriter turns the plain-text errors that http.ServeMux writes for
// unknown paths and methods into JSON errors.
type jsonErrorWriter struct {
	http.ResponseWriter
	what     string // "METHOD /path", for the message
	replaced bool
}

func (w *jsonErrorWriter) WriteHeader(code int) {
	if code < 400 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	msg := fmt.Sprintf("%s: %s", w.what, http.StatusText(code))
	writeJSON(w.ResponseWriter, code, errorResponse{Error: msg})
}

func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// ListenAdmin listens on the unix socket at path for the admin API. It
// creates the parent directory (mode 0700) if missing, replaces a stale
// socket left by a crashed server, refuses to replace a socket another server
// still answers on or a file that is not a socket, and makes the socket
// readable and writable by its owner only (0600).
func ListenAdmin(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return l, nil
}

// removeStaleSocket removes the socket at path unless something answers on
// it. A missing path is fine.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("admin socket %s: %w", path, err)
	case fi.Mode().Type() != os.ModeSocket:
		return fmt.Errorf("admin socket %s: exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s: in use; is another homenet running?", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale admin socket: %w", err)
	}
	return nil
}

// ServeAdmin serves the admin API for a on l (see ListenAdmin) until ctx is
// done, then closes l and waits briefly for requests in flight.
func ServeAdmin(ctx context.Context, l net.Listener, a Admin, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           AdminHandler(a, logger),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin API on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	// Requests in flight see ctx cancelled (BaseContext), so this is quick.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	<-errc
	return nil
}
