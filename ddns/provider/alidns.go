package provider

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/libdns"
)

// Alibaba Cloud DNS (Alidns), API version 2015-01-09: RPC style, every
// parameter in the query string, signed with HMAC-SHA1 ("signature
// version 1.0"). The zone is the Alidns "DomainName" (no trailing dot), a
// record name its "RR" ("@" for the apex).
const (
	aliEndpoint = "https://alidns.aliyuncs.com/"
	aliVersion  = "2015-01-09"
	aliPageSize = 500 // the most DescribeDomainRecords returns at once
	aliMaxPages = 200 // 100,000 records: a bound on a runaway pagination
)

// aliDNS is the recordAPI of Alibaba Cloud DNS.
type aliDNS struct {
	api      httpAPI
	endpoint string // aliEndpoint; tests use an httptest server
	keyID    string // ALICLOUD_ACCESS_KEY
	secret   string // ALICLOUD_SECRET_KEY
	token    string // ALICLOUD_SECURITY_TOKEN, for STS credentials
	now      func() time.Time
	nonce    func() string // SignatureNonce, unique per request
}

func newAliDNS(creds Credentials) (Provider, error) {
	return &recordProvider{name: "alidns", api: newAliDNSAPI(creds)}, nil
}

func newAliDNSAPI(creds Credentials) *aliDNS {
	return &aliDNS{
		api:      newHTTPAPI(),
		endpoint: aliEndpoint,
		keyID:    creds["ALICLOUD_ACCESS_KEY"],
		secret:   creds["ALICLOUD_SECRET_KEY"],
		token:    creds["ALICLOUD_SECURITY_TOKEN"],
		now:      time.Now,
		nonce:    rand.Text,
	}
}

// aliRecord is a record in a DescribeDomainRecords reply.
type aliRecord struct {
	RecordId aliText
	RR       string
	Type     string
	Value    string
	TTL      aliText
	Priority aliText // MX only
	Line     string
}

// aliListReply is a DescribeDomainRecords reply.
type aliListReply struct {
	TotalCount    aliText
	DomainRecords struct {
		Record []aliRecord
	}
}

// aliText is a JSON string or number, kept as its text: the API sends
// IDs and counts sometimes one way, sometimes the other.
type aliText string

func (t *aliText) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = aliText(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*t = aliText(n)
	return nil
}

func (t aliText) int() int64 {
	n, _ := strconv.ParseInt(string(t), 10, 64)
	return n
}

// aliParseList reads one page of a DescribeDomainRecords reply: the
// records as apiRecords and the total count over all pages.
func aliParseList(body []byte) ([]apiRecord, int64, error) {
	var reply aliListReply
	if err := json.Unmarshal(body, &reply); err != nil {
		return nil, 0, err
	}
	recs := make([]apiRecord, 0, len(reply.DomainRecords.Record))
	for _, r := range reply.DomainRecords.Record {
		rr := libdns.RR{
			Name: r.RR,
			Type: strings.ToUpper(r.Type),
			TTL:  time.Duration(r.TTL.int()) * time.Second,
			Data: r.Value,
		}
		if rr.Type == "MX" {
			rr.Data = strconv.FormatInt(r.Priority.int(), 10) + " " + r.Value
		}
		recs = append(recs, apiRecord{ID: string(r.RecordId), Line: r.Line, RR: rr})
	}
	return recs, reply.TotalCount.int(), nil
}

// aliParseError reads the code and message of an error reply,
// {"RequestId": ..., "Code": ..., "Message": ...}; empty if body is not one.
func aliParseError(body []byte) (code, message string) {
	var e struct{ Code, Message string }
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Code, e.Message
}

// aliThrottled reports whether code says to slow down: Alidns sends
// "Throttling.User" and friends with HTTP 400, which httpAPI does not retry.
func aliThrottled(code string) bool {
	return code == "Throttling" || strings.HasPrefix(code, "Throttling.")
}

func (a *aliDNS) list(ctx context.Context, zone, name, typ string) ([]apiRecord, error) {
	params := map[string]string{"DomainName": zone, "PageSize": strconv.Itoa(aliPageSize)}
	if name != "" {
		params["RRKeyWord"] = name // a substring match: filtered below
	}
	if typ != "" {
		params["TypeKeyWord"] = typ
	}
	var out []apiRecord
	var seen int64
	for page := 1; page <= aliMaxPages; page++ {
		params["PageNumber"] = strconv.Itoa(page)
		body, err := a.call(ctx, "DescribeDomainRecords", params)
		if err != nil {
			return nil, err
		}
		recs, total, err := aliParseList(body)
		if err != nil {
			return nil, fmt.Errorf("alidns DescribeDomainRecords: reading reply: %w", err)
		}
		for _, r := range recs {
			if (name == "" || strings.EqualFold(r.RR.Name, name)) && (typ == "" || r.RR.Type == typ) {
				out = append(out, r)
			}
		}
		seen += int64(len(recs))
		if len(recs) == 0 || seen >= total {
			return out, nil
		}
	}
	return nil, fmt.Errorf("alidns DescribeDomainRecords: zone %s has more than %d pages of records", zone, aliMaxPages)
}

// recordParams are the parameters AddDomainRecord and UpdateDomainRecord
// share.
func (a *aliDNS) recordParams(rr libdns.RR) (map[string]string, error) {
	p := map[string]string{
		"RR":    rr.Name,
		"Type":  rr.Type,
		"Value": rr.Data,
		"TTL":   strconv.FormatInt(apiTTL(rr), 10),
	}
	if rr.Type == "MX" {
		pref, target, err := apiSplitMX(rr.Data)
		if err != nil {
			return nil, err
		}
		p["Priority"], p["Value"] = strconv.FormatInt(pref, 10), target
	}
	return p, nil
}

func (a *aliDNS) create(ctx context.Context, zone string, rr libdns.RR) (string, error) {
	params, err := a.recordParams(rr)
	if err != nil {
		return "", err
	}
	params["DomainName"] = zone
	body, err := a.call(ctx, "AddDomainRecord", params)
	if err != nil {
		return "", err
	}
	var reply struct{ RecordId aliText }
	if err := json.Unmarshal(body, &reply); err != nil {
		return "", fmt.Errorf("alidns AddDomainRecord: reading reply: %w", err)
	}
	return string(reply.RecordId), nil
}

func (a *aliDNS) update(ctx context.Context, zone string, old apiRecord, rr libdns.RR) error {
	params, err := a.recordParams(rr)
	if err != nil {
		return err
	}
	params["RecordId"] = old.ID
	if old.Line != "" {
		params["Line"] = old.Line
	}
	_, err = a.call(ctx, "UpdateDomainRecord", params)
	return err
}

func (a *aliDNS) remove(ctx context.Context, zone string, rec apiRecord) error {
	_, err := a.call(ctx, "DeleteDomainRecord", map[string]string{"RecordId": rec.ID})
	return err
}

// call sends action with params and returns the body of a successful
// reply. A refusal is a *StatusError with the Alidns code and message;
// throttling is retried like a 429.
func (a *aliDNS) call(ctx context.Context, action string, params map[string]string) ([]byte, error) {
	wait := a.api.backoff
	for try := 1; ; try++ {
		body, err := a.api.do(ctx, "alidns", action, func() (*http.Request, error) {
			return a.newRequest(action, params)
		})
		if err == nil {
			return body, nil
		}
		var serr *StatusError
		if !errors.As(err, &serr) {
			return nil, aliRedact(err)
		}
		serr.Code, serr.Message = aliParseError(body)
		if serr.Temporary() || !aliThrottled(serr.Code) || try >= a.api.attempts {
			return nil, err
		}
		if err := apiSleep(ctx, wait); err != nil {
			return nil, errors.Join(serr, err)
		}
		wait *= 2
	}
}

// newRequest builds the signed GET request for action: the common
// parameters, params, and Signature.
func (a *aliDNS) newRequest(action string, params map[string]string) (*http.Request, error) {
	q := map[string]string{
		"AccessKeyId":      a.keyID,
		"Action":           action,
		"Format":           "JSON",
		"SignatureMethod":  "HMAC-SHA1",
		"SignatureNonce":   a.nonce(),
		"SignatureVersion": "1.0",
		"Timestamp":        a.now().UTC().Format("2006-01-02T15:04:05Z"),
		"Version":          aliVersion,
	}
	if a.token != "" {
		q["SecurityToken"] = a.token
	}
	for k, v := range params {
		q[k] = v
	}
	query := aliCanonicalQuery(q)
	sig := aliSignature(http.MethodGet, query, a.secret)
	return http.NewRequest(http.MethodGet, a.endpoint+"?"+query+"&Signature="+aliEscape(sig), nil)
}

// aliCanonicalQuery is the "canonicalized query string" of params: sorted
// by name, names and values percent-encoded, joined by "&". It is also
// the query string sent.
func aliCanonicalQuery(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(aliEscape(k))
		b.WriteByte('=')
		b.WriteString(aliEscape(params[k]))
	}
	return b.String()
}

// aliStringToSign is method & percentEncode("/") & percentEncode(query).
func aliStringToSign(method, query string) string {
	return method + "&" + aliEscape("/") + "&" + aliEscape(query)
}

// aliSignature is Base64(HMAC-SHA1(secret + "&", StringToSign)).
func aliSignature(method, query, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(aliStringToSign(method, query)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// aliEscape percent-encodes s as Alibaba Cloud specifies (RFC 3986): all
// but A-Z a-z 0-9 - _ . ~ as %XY of each UTF-8 byte, in upper case; so a
// space is %20, "*" is %2A and "~" stays.
func aliEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// aliRedact removes the query string from the URL net/http puts in its
// errors: it holds the AccessKeyId, the signature and any SecurityToken.
func aliRedact(err error) error {
	var uerr *url.Error
	if !errors.As(err, &uerr) {
		return err
	}
	full := uerr.URL
	short, _, _ := strings.Cut(full, "?")
	if short == full {
		return err
	}
	uerr.URL = short
	return &aliRedactedError{msg: strings.ReplaceAll(err.Error(), full, short), err: err}
}

// aliRedactedError is err with a message that leaves out secrets.
type aliRedactedError struct {
	msg string
	err error
}

func (e *aliRedactedError) Error() string { return e.msg }
func (e *aliRedactedError) Unwrap() error { return e.err }
