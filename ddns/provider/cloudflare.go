package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// cloudflareEndpoint is the base URL of Cloudflare's API v4.
const cloudflareEndpoint = "https://api.cloudflare.com/client/v4"

// cloudflarePerPage is how many records one list request asks for. The API
// allows more, but a home zone fits in one page of this size anyway.
const cloudflarePerPage = 100

// cloudflareMaxPages stops paging through a reply that never ends.
const cloudflareMaxPages = 1000

// cloudflare changes records through Cloudflare's API v4 with an API token
// (https://developers.cloudflare.com/api/resources/dns/subresources/records/).
//
// Cloudflare names are absolute without the trailing dot; they are made
// relative to the zone on the way out. A TTL of 0 is sent as 1, which
// Cloudflare calls "automatic", and reads back as 0; other TTLs are clamped
// to 60 s..1 day. Records are never proxied: DERP and the TS2021 protocol
// cannot pass through Cloudflare's HTTP proxy.
//
// Cloudflare changes one record per request, so SetRecords is not atomic:
// it updates records in place first, then creates, then deletes, so a name
// being moved to a new address never goes without one. Changes made through
// one cloudflare value are serialized so that concurrent calls do not undo
// each other.
type cloudflare struct {
	api      httpAPI
	endpoint string // the API base URL; tests point it at httptest
	token    string
	zoneID   string        // CLOUDFLARE_ZONE_ID; when set it is used for every zone
	writing  chan struct{} // holds one token while records are being changed

	mu    sync.Mutex
	zones map[string]string // zone name (lower case, no trailing dot) → zone ID
}

// newCloudflare returns the Cloudflare provider for creds.
func newCloudflare(creds Credentials) (Provider, error) {
	token := strings.TrimSpace(creds["CLOUDFLARE_DNS_API_TOKEN"])
	if token == "" || strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("cloudflare: credential CLOUDFLARE_DNS_API_TOKEN is empty or contains spaces or control characters")
	}
	zoneID := strings.TrimSpace(creds["CLOUDFLARE_ZONE_ID"])
	if !validCloudflareID(zoneID) {
		return nil, fmt.Errorf("cloudflare: CLOUDFLARE_ZONE_ID %q is not a zone ID (want up to 32 letters and digits, as the zone's Overview page shows it)", zoneID)
	}
	return &cloudflare{
		api:      newHTTPAPI(),
		endpoint: cloudflareEndpoint,
		token:    token,
		zoneID:   zoneID,
		writing:  make(chan struct{}, 1),
		zones:    map[string]string{},
	}, nil
}

// validCloudflareID reports whether id is empty or looks like a Cloudflare
// identifier, so that it can go into a URL path as it is.
func validCloudflareID(id string) bool {
	if len(id) > 32 {
		return false
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// GetRecords returns all records of zone.
func (c *cloudflare) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	id, err := c.zoneIDFor(ctx, zone)
	if err != nil {
		return nil, err
	}
	recs, err := c.list(ctx, zone, id, "", "")
	if err != nil {
		return nil, err
	}
	out := make([]libdns.Record, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.libdns(zone))
	}
	return out, nil
}

// AppendRecords creates recs in zone and returns them as Cloudflare stored
// them. Cloudflare refuses a record identical to an existing one (code
// 81058).
func (c *cloudflare) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	want, err := cloudflareRecords(recs, zone)
	if err != nil {
		return nil, err
	}
	id, err := c.zoneIDFor(ctx, zone)
	if err != nil {
		return nil, err
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []libdns.Record
	for _, w := range want {
		got, err := c.create(ctx, zone, id, w)
		if err != nil {
			return out, err
		}
		out = append(out, got.libdns(zone))
	}
	return out, nil
}

// SetRecords makes recs the only records of their (name, type) pairs in
// zone: records whose content already matches are kept (their TTL
// updated if it differs), other existing records of the pair are updated
// in place to the remaining wanted values, missing ones are created and
// the rest deleted. It returns the records of recs as Cloudflare now has
// them.
func (c *cloudflare) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	want, err := cloudflareRecords(recs, zone)
	if err != nil {
		return nil, err
	}
	id, err := c.zoneIDFor(ctx, zone)
	if err != nil {
		return nil, err
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Group by RRset, keeping the order of first appearance.
	type rrset struct {
		name, typ string
		recs      []cloudflareRecord
	}
	var sets []*rrset
	index := map[[2]string]*rrset{}
	for _, w := range want {
		k := [2]string{strings.ToLower(w.Name), w.Type}
		s := index[k]
		if s == nil {
			s = &rrset{name: w.Name, typ: w.Type}
			index[k] = s
			sets = append(sets, s)
		}
		if !containsContent(s.recs, w) {
			s.recs = append(s.recs, w)
		}
	}

	var out []libdns.Record
	for _, s := range sets {
		have, err := c.list(ctx, zone, id, s.name, s.typ)
		if err != nil {
			return out, err
		}
		used := make([]bool, len(have))
		var missing []cloudflareRecord
		for _, w := range s.recs {
			i := indexContent(have, used, w)
			if i < 0 {
				missing = append(missing, w)
				continue
			}
			used[i] = true
			got := have[i]
			if got.TTL != w.TTL || got.Proxied {
				if got, err = c.update(ctx, zone, id, have[i].ID, w); err != nil {
					return out, err
				}
			}
			out = append(out, got.libdns(zone))
		}
		for _, w := range missing {
			// Reuse a record that is not wanted any more, so that the
			// name keeps an answer throughout.
			i := firstUnused(used)
			var got cloudflareRecord
			if i >= 0 {
				used[i] = true
				got, err = c.update(ctx, zone, id, have[i].ID, w)
			} else {
				got, err = c.create(ctx, zone, id, w)
			}
			if err != nil {
				return out, err
			}
			out = append(out, got.libdns(zone))
		}
		for i, h := range have {
			if !used[i] {
				if err := c.delete(ctx, zone, id, h); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}

// DeleteRecords deletes the records of zone that match one of recs: the
// name always, and the type, TTL and value unless they are left empty.
// It returns the records deleted.
func (c *cloudflare) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	type match struct {
		name, typ, data string
		ttl             int // 0: any
	}
	var ms []match
	for _, rec := range recs {
		rr := rec.RR()
		if rr.Name == "" {
			return nil, fmt.Errorf("cloudflare: deleting a %s record in zone %s: the record has no name", rr.Type, zone)
		}
		m := match{name: cloudflareName(rr.Name, zone), typ: strings.ToUpper(rr.Type)}
		if rr.TTL != 0 {
			m.ttl = cloudflareTTL(rr.TTL)
		}
		if rr.Data != "" {
			m.data = rr.Data
			if m.typ != "" {
				// Compare values as Cloudflare would store them.
				w, err := cloudflareRecordFor(rr, zone)
				if err != nil {
					return nil, err
				}
				m.data = w.libdns(zone).RR().Data
			}
		}
		ms = append(ms, m)
	}
	id, err := c.zoneIDFor(ctx, zone)
	if err != nil {
		return nil, err
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []libdns.Record
	deleted := map[string]bool{}
	for _, m := range ms {
		have, err := c.list(ctx, zone, id, m.name, m.typ)
		if err != nil {
			return out, err
		}
		for _, h := range have {
			got := h.libdns(zone)
			if deleted[h.ID] ||
				m.ttl != 0 && h.TTL != m.ttl ||
				m.data != "" && !sameRecordData(h.Type, got.RR().Data, m.data) {
				continue
			}
			if err := c.delete(ctx, zone, id, h); err != nil {
				return out, err
			}
			deleted[h.ID] = true
			out = append(out, got)
		}
	}
	return out, nil
}

// lock serializes changes; it gives up when ctx ends first.
func (c *cloudflare) lock(ctx context.Context) (unlock func(), err error) {
	select {
	case c.writing <- struct{}{}:
		return func() { <-c.writing }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("cloudflare: waiting for another change to finish: %w", ctx.Err())
	}
}

// zoneIDFor returns the ID of zone: CLOUDFLARE_ZONE_ID when set, otherwise
// the one GET /zones?name= finds, remembered for later calls.
func (c *cloudflare) zoneIDFor(ctx context.Context, zone string) (string, error) {
	if c.zoneID != "" {
		return c.zoneID, nil
	}
	name := strings.ToLower(strings.TrimSuffix(zone, "."))
	if name == "" {
		return "", errors.New("cloudflare: the zone name is empty")
	}
	c.mu.Lock()
	id, ok := c.zones[name]
	c.mu.Unlock()
	if ok {
		return id, nil
	}

	var zones []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	q := url.Values{"name": {name}}
	if _, err := c.call(ctx, "ListZones", http.MethodGet, "/zones", q, nil, &zones); err != nil {
		return "", fmt.Errorf("%w (looking up zone %s; set CLOUDFLARE_ZONE_ID to skip the lookup)", err, name)
	}
	for _, z := range zones {
		if strings.EqualFold(strings.TrimSuffix(z.Name, "."), name) && z.ID != "" {
			if !validCloudflareID(z.ID) {
				return "", fmt.Errorf("cloudflare ListZones: zone %s has the malformed ID %q", name, z.ID)
			}
			c.mu.Lock()
			c.zones[name] = z.ID
			c.mu.Unlock()
			return z.ID, nil
		}
	}
	return "", fmt.Errorf("cloudflare: zone %s is not among the zones the API token can read (give the token Zone:Read on it, or set CLOUDFLARE_ZONE_ID)", name)
}

// list returns the records of zone id, all of them or only those named
// fqdn (Cloudflare form) and of type typ when these are not empty.
func (c *cloudflare) list(ctx context.Context, zone, id, fqdn, typ string) ([]cloudflareRecord, error) {
	var all []cloudflareRecord
	for page := 1; page <= cloudflareMaxPages; page++ {
		q := url.Values{"page": {strconv.Itoa(page)}, "per_page": {strconv.Itoa(cloudflarePerPage)}}
		if fqdn != "" {
			q.Set("name.exact", fqdn)
		}
		if typ != "" {
			q.Set("type", typ)
		}
		var recs []cloudflareRecord
		info, err := c.call(ctx, "ListDNSRecords", http.MethodGet, "/zones/"+id+"/dns_records", q, nil, &recs)
		if err != nil {
			return nil, fmt.Errorf("%w (zone %s)", err, zone)
		}
		for _, r := range recs {
			// Filter again, in case the API ignored a filter.
			if (fqdn == "" || strings.EqualFold(strings.TrimSuffix(r.Name, "."), fqdn)) && (typ == "" || r.Type == typ) {
				all = append(all, r)
			}
		}
		if len(recs) == 0 || info == nil || info.TotalPages <= page && (info.TotalPages > 0 || len(recs) < cloudflarePerPage) {
			return all, nil
		}
	}
	return nil, fmt.Errorf("cloudflare ListDNSRecords: zone %s: more than %d pages of records", zone, cloudflareMaxPages)
}

func (c *cloudflare) create(ctx context.Context, zone, id string, r cloudflareRecord) (cloudflareRecord, error) {
	var got cloudflareRecord
	if _, err := c.call(ctx, "CreateDNSRecord", http.MethodPost, "/zones/"+id+"/dns_records", nil, r, &got); err != nil {
		return got, fmt.Errorf("%w (zone %s, %s %s)", err, zone, r.Type, r.Name)
	}
	return got, nil
}

// update overwrites record rid with r (PUT, so every field is r's).
func (c *cloudflare) update(ctx context.Context, zone, id, rid string, r cloudflareRecord) (cloudflareRecord, error) {
	var got cloudflareRecord
	if !validCloudflareID(rid) || rid == "" {
		return got, fmt.Errorf("cloudflare: zone %s: record %s %s has the malformed ID %q", zone, r.Type, r.Name, rid)
	}
	if _, err := c.call(ctx, "OverwriteDNSRecord", http.MethodPut, "/zones/"+id+"/dns_records/"+rid, nil, r, &got); err != nil {
		return got, fmt.Errorf("%w (zone %s, %s %s)", err, zone, r.Type, r.Name)
	}
	return got, nil
}

func (c *cloudflare) delete(ctx context.Context, zone, id string, r cloudflareRecord) error {
	if !validCloudflareID(r.ID) || r.ID == "" {
		return fmt.Errorf("cloudflare: zone %s: record %s %s has the malformed ID %q", zone, r.Type, r.Name, r.ID)
	}
	if _, err := c.call(ctx, "DeleteDNSRecord", http.MethodDelete, "/zones/"+id+"/dns_records/"+r.ID, nil, nil, nil); err != nil {
		return fmt.Errorf("%w (zone %s, %s %s %s)", err, zone, r.Type, r.Name, r.Content)
	}
	return nil
}

// call sends one API request and decodes the result field of the reply
// into result, unless it is nil. op is the operation's name in Cloudflare's
// API reference.
func (c *cloudflare) call(ctx context.Context, op, method, path string, query url.Values, body, result any) (*cloudflareResultInfo, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("cloudflare %s: %w", op, err)
		}
	}
	u := c.endpoint + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	newReq := func() (*http.Request, error) {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequest(method, u, rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, nil
	}
	reply, err := c.api.do(ctx, "cloudflare", op, newReq)
	if err != nil {
		if serr, ok := errors.AsType[*StatusError](err); ok {
			if env, perr := parseCloudflareReply(reply); perr == nil {
				serr.Code, serr.Message = env.firstError(c.token)
			}
		}
		return nil, err
	}
	env, err := parseCloudflareReply(reply)
	if err != nil {
		return nil, fmt.Errorf("cloudflare %s: %w", op, err)
	}
	if !env.Success {
		code, msg := env.firstError(c.token)
		return nil, &StatusError{Provider: "cloudflare", Op: op, Status: http.StatusOK, Code: code, Message: msg}
	}
	if result != nil && len(env.Result) > 0 && string(env.Result) != "null" {
		if err := json.Unmarshal(env.Result, result); err != nil {
			return nil, fmt.Errorf("cloudflare %s: decoding the result: %w", op, err)
		}
	}
	return env.ResultInfo, nil
}

// cloudflareReply is the envelope of every API v4 reply.
type cloudflareReply struct {
	Success    bool                  `json:"success"`
	Errors     []cloudflareMessage   `json:"errors"`
	Result     json.RawMessage       `json:"result"`
	ResultInfo *cloudflareResultInfo `json:"result_info"`
}

type cloudflareMessage struct {
	Code    json.RawMessage `json:"code"` // a number; kept raw to accept any form
	Message string          `json:"message"`
}

type cloudflareResultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

// parseCloudflareReply decodes a reply body.
func parseCloudflareReply(body []byte) (cloudflareReply, error) {
	var env cloudflareReply
	if err := json.Unmarshal(body, &env); err != nil {
		return cloudflareReply{}, fmt.Errorf("decoding the reply: %w", err)
	}
	return env, nil
}

// firstError returns the code and message of the first error in the
// reply, shortened, with token blanked out should the API ever echo it.
func (env cloudflareReply) firstError(token string) (code, message string) {
	if len(env.Errors) == 0 {
		return "", ""
	}
	e := env.Errors[0]
	code = strings.Trim(string(e.Code), `"`)
	if len(code) > 16 || strings.ContainsAny(code, "{}[], \t\r\n") {
		code = ""
	}
	message = e.Message
	if token != "" {
		message = strings.ReplaceAll(message, token, "[token]")
	}
	if len(message) > 300 {
		message = message[:300] + "…"
	}
	return code, strings.ToValidUTF8(message, "?")
}

// cloudflareRecord is a DNS record as the API reads and writes it.
type cloudflareRecord struct {
	ID       string  `json:"id,omitempty"`
	Type     string  `json:"type"`
	Name     string  `json:"name"` // absolute, without the trailing dot
	Content  string  `json:"content"`
	TTL      int     `json:"ttl"` // seconds; 1 is automatic
	Proxied  bool    `json:"proxied"`
	Priority *uint16 `json:"priority,omitempty"` // MX
}

// libdns returns r as a libdns record relative to zone: Address, TXT,
// CNAME, MX or NS for those types, RR for the others.
func (r cloudflareRecord) libdns(zone string) libdns.Record {
	rr := libdns.RR{Name: zoneRelName(r.Name, zone), Type: r.Type, Data: r.Content}
	if r.TTL > 1 {
		rr.TTL = time.Duration(r.TTL) * time.Second
	}
	switch r.Type {
	case "TXT":
		rr.Data = cloudflareUnquoteTXT(r.Content)
	case "MX":
		if r.Priority != nil {
			rr.Data = strconv.Itoa(int(*r.Priority)) + " " + r.Content
		}
	}
	switch r.Type {
	case "A", "AAAA", "TXT", "CNAME", "MX", "NS":
		// An A record holding an IPv6 address would come back as AAAA.
		if rec, err := rr.Parse(); err == nil && rec.RR().Type == r.Type {
			return rec
		}
	}
	return rr
}

// cloudflareRecords converts recs into the form the API takes.
func cloudflareRecords(recs []libdns.Record, zone string) ([]cloudflareRecord, error) {
	out := make([]cloudflareRecord, 0, len(recs))
	for _, rec := range recs {
		r, err := cloudflareRecordFor(rec.RR(), zone)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// cloudflareRecordFor converts rr into the form the API takes.
func cloudflareRecordFor(rr libdns.RR, zone string) (cloudflareRecord, error) {
	r := cloudflareRecord{
		Type:    strings.ToUpper(rr.Type),
		Name:    cloudflareName(rr.Name, zone),
		Content: rr.Data,
		TTL:     cloudflareTTL(rr.TTL),
	}
	bad := func(format string, args ...any) (cloudflareRecord, error) {
		return cloudflareRecord{}, fmt.Errorf("cloudflare: record %s %q in zone %s: "+format, append([]any{r.Type, rr.Name, zone}, args...)...)
	}
	switch {
	case rr.Name == "":
		return bad("the record has no name")
	case r.Type == "":
		return bad("the record has no type")
	case rr.Data == "":
		return bad("the record has no value")
	}
	switch r.Type {
	case "A", "AAAA":
		ip, err := netip.ParseAddr(rr.Data)
		if err != nil {
			return bad("%v", err)
		}
		ip = ip.Unmap()
		if ip.Is4() != (r.Type == "A") || ip.Zone() != "" {
			return bad("%s is not an address for this type", ip)
		}
		r.Content = ip.String()
	case "TXT":
		r.Content = cloudflareQuoteTXT(rr.Data)
	case "MX":
		rec, err := rr.Parse()
		if err != nil {
			return bad("%v", err)
		}
		mx := rec.(libdns.MX)
		r.Priority, r.Content = &mx.Preference, strings.TrimSuffix(mx.Target, ".")
	case "CNAME", "NS":
		r.Content = strings.TrimSuffix(r.Content, ".")
	}
	return r, nil
}

// cloudflareName returns the absolute name, without the trailing dot, of
// the record name relative to zone.
func cloudflareName(name, zone string) string {
	return strings.TrimSuffix(zoneAbsName(name, zone), ".")
}

// cloudflareTTL converts a libdns TTL into Cloudflare's: 0 becomes 1
// (automatic), others are clamped to 60 s..1 day.
func cloudflareTTL(ttl time.Duration) int {
	s := int64(ttl / time.Second)
	switch {
	case ttl == 0:
		return 1
	case s < 60:
		return 60
	case s > 86400:
		return 86400
	}
	return int(s)
}

// containsContent reports whether recs has a record with w's value.
func containsContent(recs []cloudflareRecord, w cloudflareRecord) bool {
	return indexContent(recs, make([]bool, len(recs)), w) >= 0
}

// indexContent returns the index of the first record in have not yet used
// whose value equals w's, or -1.
func indexContent(have []cloudflareRecord, used []bool, w cloudflareRecord) int {
	want := w.libdns("").RR().Data
	for i, h := range have {
		if !used[i] && h.Type == w.Type && sameRecordData(h.Type, h.libdns("").RR().Data, want) {
			return i
		}
	}
	return -1
}

func firstUnused(used []bool) int {
	for i, u := range used {
		if !u {
			return i
		}
	}
	return -1
}

// sameRecordData compares two record values of type typ in libdns form: TXT
// exactly, others ignoring case and a final dot.
func sameRecordData(typ, a, b string) bool {
	if typ == "TXT" {
		return a == b
	}
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// zoneAbsName returns the fully qualified name, with the trailing dot, of
// the record name relative to zone ("@" or "" for the apex). A name that
// already ends in a dot is taken as absolute.
func zoneAbsName(name, zone string) string {
	zone = strings.TrimSuffix(zone, ".") + "."
	switch {
	case name == "" || name == "@":
		return zone
	case strings.HasSuffix(name, "."):
		return name
	case zone == ".":
		return name + "."
	}
	return name + "." + zone
}

// zoneRelName returns fqdn relative to zone, "@" for the apex, ignoring
// case and trailing dots. A name outside the zone is returned absolute,
// with a trailing dot.
func zoneRelName(fqdn, zone string) string {
	f := strings.TrimSuffix(fqdn, ".")
	z := strings.TrimSuffix(zone, ".")
	switch {
	case strings.EqualFold(f, z):
		return "@"
	case z == "":
		return f
	case len(f) > len(z) && f[len(f)-len(z)-1] == '.' && strings.EqualFold(f[len(f)-len(z):], z):
		return f[:len(f)-len(z)-1]
	}
	return f + "."
}

// cloudflareQuoteTXT writes text as zone-file character strings of at most 255 bytes
// each, quoted, with quotes and backslashes escaped: the form Cloudflare
// documents for TXT content.
func cloudflareQuoteTXT(text string) string {
	var b strings.Builder
	for first := true; first || text != ""; first = false {
		chunk := text[:min(len(text), 255)]
		text = text[len(chunk):]
		if !first {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for i := 0; i < len(chunk); i++ {
			if chunk[i] == '"' || chunk[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(chunk[i])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// cloudflareUnquoteTXT undoes cloudflareQuoteTXT: it joins the quoted character strings of
// content, resolving \X and \DDD escapes. Content that is not entirely
// quoted strings (Cloudflare keeps what it was given) is returned as it is.
func cloudflareUnquoteTXT(content string) string {
	s := strings.TrimSpace(content)
	if !strings.HasPrefix(s, `"`) {
		return content
	}
	var b strings.Builder
	for s != "" {
		if s[0] != '"' {
			return content
		}
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' {
				b.WriteByte(s[i])
				continue
			}
			if i+3 < len(s) && isDecimalDigit(s[i+1]) && isDecimalDigit(s[i+2]) && isDecimalDigit(s[i+3]) {
				n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
				if n > 255 {
					return content
				}
				b.WriteByte(byte(n))
				i += 3
				continue
			}
			if i+1 >= len(s) {
				return content
			}
			i++
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return content // unterminated
		}
		s = strings.TrimLeft(s[i+1:], " \t")
	}
	return b.String()
}

func isDecimalDigit(c byte) bool { return '0' <= c && c <= '9' }
