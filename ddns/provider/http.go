package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxResponse bounds what is read of a provider's reply: record lists of
// a home zone are a few KiB.
const maxResponse = 4 << 20

// httpAPI is what the HTTP providers share: a client and the retry policy.
// Tests shorten the back-off and point the providers at httptest servers.
type httpAPI struct {
	client   *http.Client
	attempts int           // tries per request, the first included
	backoff  time.Duration // before the second try; doubles after
}

func newHTTPAPI() httpAPI {
	return httpAPI{client: &http.Client{Timeout: 20 * time.Second}, attempts: 3, backoff: 500 * time.Millisecond}
}

// StatusError is a reply a provider refused with, after retries.
type StatusError struct {
	Provider string
	Op       string // the API action, such as "AddDomainRecord"
	Status   int    // the HTTP status
	Code     string // the provider's own error code, when it gave one
	Message  string // the provider's own message, when it gave one
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Provider, e.Op, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether trying again later may help: rate limits and
// server errors.
func (e *StatusError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// do sends the request newReq builds (afresh for every try, since signed
// requests carry a timestamp) and returns the body of a 2xx reply. It
// retries network errors, 429 and 5xx with back-off, honouring a short
// Retry-After. On a final non-2xx reply it returns the body too, with a
// *StatusError whose Code and Message the caller fills from that body.
func (h httpAPI) do(ctx context.Context, provider, op string, newReq func() (*http.Request, error)) ([]byte, error) {
	wait := h.backoff
	var lastErr error
	for try := 1; ; try++ {
		req, err := newReq()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", provider, op, err)
		}
		body, status, retryAfter, err := h.roundTrip(req.WithContext(ctx))
		switch {
		case err != nil:
			lastErr = fmt.Errorf("%s %s: %w", provider, op, err)
		case status/100 == 2:
			return body, nil
		default:
			serr := &StatusError{Provider: provider, Op: op, Status: status}
			if !serr.Temporary() || try >= h.attempts {
				return body, serr
			}
			lastErr = serr
			if retryAfter > wait && retryAfter <= 10*time.Second {
				wait = retryAfter
			}
		}
		if try >= h.attempts || ctx.Err() != nil {
			return nil, lastErr
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(lastErr, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (h httpAPI) roundTrip(req *http.Request) (body []byte, status int, retryAfter time.Duration, err error) {
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, 0, 0, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("reading reply: %w", err)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return body, resp.StatusCode, retryAfter, nil
}
