package provider

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

const (
	// rfc2136Timeout bounds each exchange with the nameserver.
	rfc2136Timeout = 10 * time.Second
	// rfc2136DefaultTTL is the TTL of records given with a TTL of 0.
	rfc2136DefaultTTL = 300
	// rfc2136Fudge is the TSIG time fudge: how far the clocks may differ.
	rfc2136Fudge = 300
)

// rfc2136 changes records with RFC 2136 dynamic updates signed with TSIG
// (RFC 8945), sent over TCP to one nameserver, normally the zone's
// primary. Replies must carry a valid TSIG, or they are not believed.
//
//   - GetRecords transfers the zone (AXFR, signed with the key): it is the
//     one way to list a whole zone. The nameserver must allow transfers to
//     the key (bind: allow-transfer { key NAME; };). SOA is returned once;
//     DNSSEC records are left out.
//   - AppendRecords sends one update adding all records (adding an RR that
//     exists already is a no-op in RFC 2136).
//   - SetRecords sends one update that, for each (name, type) of the input,
//     deletes the RRset and adds the input's records: the server applies it
//     atomically, all or nothing, so an error leaves the zone unchanged.
//   - DeleteRecords first asks the nameserver (a signed query per name and
//     type; ANY when no type is given) which records match, since libdns
//     wants only those returned and lets TTL and value be left empty; then
//     it sends one update deleting exactly those RRs. SOA and DNSSEC
//     records are never deleted.
//
// A TTL of 0 means 300 s. Names are checked to lie inside the zone.
type rfc2136 struct {
	server  string // host:port
	keyName string // canonical: lower case, absolute
	secret  string // base64
	alg     string // one of dns.HmacSHA1 ... dns.HmacSHA512
	timeout time.Duration
}

// newRFC2136 returns the RFC 2136 provider for creds.
func newRFC2136(creds Credentials) (Provider, error) {
	server, err := rfc2136Server(creds["RFC2136_NAMESERVER"])
	if err != nil {
		return nil, err
	}
	key := strings.TrimSpace(creds["RFC2136_TSIG_KEY"])
	keyName := dns.CanonicalName(key)
	if _, ok := dns.IsDomainName(keyName); !ok || key == "" {
		return nil, fmt.Errorf("rfc2136: RFC2136_TSIG_KEY %q is not a key name (want a domain name such as homenet-key, as in bind's key \"homenet-key\" { ... })", key)
	}
	secret := strings.TrimSpace(creds["RFC2136_TSIG_SECRET"])
	if b, err := base64.StdEncoding.DecodeString(secret); err != nil || len(b) == 0 {
		return nil, errors.New("rfc2136: RFC2136_TSIG_SECRET is not base64 (want the secret \"...\" of the bind key, or tsig-keygen's output)")
	}
	alg, err := rfc2136Algorithm(creds["RFC2136_TSIG_ALGORITHM"])
	if err != nil {
		return nil, err
	}
	return &rfc2136{server: server, keyName: keyName, secret: secret, alg: alg, timeout: rfc2136Timeout}, nil
}

// rfc2136Server returns the host:port of RFC2136_NAMESERVER value s: a
// host name or address, with an optional port (53 by default); an IPv6
// address may be in brackets, and must be when a port follows.
func rfc2136Server(s string) (string, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("rfc2136: RFC2136_NAMESERVER %q: %s (want host, host:port, IPv4 address or IPv6 address, [IPv6]:port)", s, why)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "53"
	}
	if host == "" {
		return bad("no host")
	}
	if strings.HasPrefix(s, "[") && !strings.Contains(host, ":") {
		return bad("brackets are for IPv6 addresses")
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return bad("not an IPv6 address")
		}
	} else if _, ok := dns.IsDomainName(host); !ok || strings.ContainsAny(host, " /[]") {
		return bad("not a host name")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("bad port")
	}
	return net.JoinHostPort(host, port), nil
}

// rfc2136Algorithm maps RFC2136_TSIG_ALGORITHM to miekg/dns's name for it.
func rfc2136Algorithm(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	switch name {
	case "", "hmac-sha256":
		return dns.HmacSHA256, nil
	case "hmac-sha1":
		return dns.HmacSHA1, nil
	case "hmac-sha224":
		return dns.HmacSHA224, nil
	case "hmac-sha384":
		return dns.HmacSHA384, nil
	case "hmac-sha512":
		return dns.HmacSHA512, nil
	}
	return "", fmt.Errorf("rfc2136: RFC2136_TSIG_ALGORITHM %q is not supported (want hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1; hmac-md5 is not supported)", s)
}

// GetRecords transfers zone and returns its records.
func (p *rfc2136) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	z, err := rfc2136Zone(zone)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetAxfr(z)
	m.SetTsig(p.keyName, p.alg, rfc2136Fudge, time.Now().Unix())

	d := net.Dialer{Timeout: p.timeout}
	nc, err := d.DialContext(ctx, "tcp", p.server)
	if err != nil {
		return nil, p.errorf("transfer", z, err)
	}
	defer nc.Close()
	defer context.AfterFunc(ctx, func() { nc.Close() })()
	nc.SetWriteDeadline(time.Now().Add(p.timeout))
	t := &dns.Transfer{
		Conn:        &dns.Conn{Conn: nc},
		TsigSecret:  map[string]string{p.keyName: p.secret},
		ReadTimeout: p.timeout,
	}
	envs, err := t.In(m, p.server)
	if err != nil {
		return nil, p.errorf("transfer", z, p.ctxErr(ctx, err))
	}
	var out []libdns.Record
	var firstErr error
	soa := false
	// Drain the channel even after an error, so the reader goroutine ends.
	for e := range envs {
		if e.Error != nil {
			if firstErr == nil {
				firstErr = e.Error
			}
			continue
		}
		for _, rr := range e.RR {
			switch rr.Header().Rrtype {
			case dns.TypeSOA:
				if soa {
					continue
				}
				soa = true
			case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM, dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
				continue
			}
			out = append(out, rfc2136Record(rr, z))
		}
	}
	if firstErr != nil {
		return nil, p.transferError(ctx, z, firstErr)
	}
	return out, nil
}

// transferError explains a failed zone transfer.
func (p *rfc2136) transferError(ctx context.Context, zone string, err error) error {
	// miekg/dns reports a refusal as "dns: bad xfr rcode: N".
	if _, num, ok := strings.Cut(err.Error(), "bad xfr rcode: "); ok {
		if rcode, cerr := strconv.Atoi(num); cerr == nil {
			hint := rfc2136Hint(rcode, 0, p.keyName)
			if rcode == dns.RcodeRefused {
				hint = fmt.Sprintf("the nameserver refuses zone transfers to TSIG key %s; allow them (bind: allow-transfer { key %s; }; in the zone)", p.keyName, strings.TrimSuffix(p.keyName, "."))
			}
			return fmt.Errorf("rfc2136: transfer of zone %s from nameserver %s: %s: %s", zone, p.server, dns.RcodeToString[rcode], hint)
		}
	}
	if errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrNoSig) || errors.Is(err, dns.ErrSecret) {
		err = fmt.Errorf("%w: the reply's TSIG did not verify (is RFC2136_TSIG_SECRET right?)", err)
	}
	return p.errorf("transfer", zone, p.ctxErr(ctx, err))
}

// AppendRecords adds recs to zone in one update.
func (p *rfc2136) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, err := rfc2136Zone(zone)
	if err != nil {
		return nil, err
	}
	rrs, err := rfc2136RRs(recs, z)
	if err != nil {
		return nil, err
	}
	out := rfc2136Records(rrs, z)
	if len(rrs) == 0 {
		return out, nil
	}
	m := new(dns.Msg)
	m.SetUpdate(z)
	m.Insert(rrs)
	if err := p.update(ctx, z, m); err != nil {
		return nil, err
	}
	return out, nil
}

// SetRecords replaces, in one atomic update, each RRset named in recs by
// the records of recs.
func (p *rfc2136) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, err := rfc2136Zone(zone)
	if err != nil {
		return nil, err
	}
	rrs, err := rfc2136RRs(recs, z)
	if err != nil {
		return nil, err
	}
	out := rfc2136Records(rrs, z)
	if len(rrs) == 0 {
		return out, nil
	}
	m := new(dns.Msg)
	m.SetUpdate(z)
	seen := map[[2]string]bool{}
	for _, rr := range rrs {
		h := rr.Header()
		k := [2]string{strings.ToLower(h.Name), dns.Type(h.Rrtype).String()}
		if !seen[k] {
			seen[k] = true
			m.RemoveRRset([]dns.RR{rr})
		}
	}
	m.Insert(rrs)
	if err := p.update(ctx, z, m); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRecords deletes the records of zone that match one of recs (name
// always; type, TTL and value unless empty) and returns them.
func (p *rfc2136) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, err := rfc2136Zone(zone)
	if err != nil {
		return nil, err
	}
	type match struct {
		name  string
		qtype uint16 // TypeANY when no type is given
		ttl   uint32 // 0: any
		data  string // libdns form; "": any
		rr    dns.RR // the exact RR, when type and value are given
	}
	var ms []match
	for _, rec := range recs {
		rr := rec.RR()
		if rr.Name == "" {
			return nil, fmt.Errorf("rfc2136: deleting a %s record in zone %s: the record has no name", rr.Type, z)
		}
		name, err := rfc2136Name(rr.Name, z)
		if err != nil {
			return nil, err
		}
		m := match{name: name, qtype: dns.TypeANY, ttl: uint32(rr.TTL / time.Second), data: rr.Data}
		if rr.Type != "" {
			t, ok := dns.StringToType[strings.ToUpper(rr.Type)]
			if !ok {
				return nil, fmt.Errorf("rfc2136: record %s %s in zone %s: unknown type", rr.Type, rr.Name, z)
			}
			m.qtype = t
			if rr.Data != "" {
				if m.rr, err = rfc2136RR(rr, z); err != nil {
					return nil, err
				}
			}
		}
		ms = append(ms, m)
	}

	var found []dns.RR
	answers := map[string][]dns.RR{}
	for _, m := range ms {
		k := m.name + " " + dns.Type(m.qtype).String()
		have, ok := answers[k]
		if !ok {
			if have, err = p.lookup(ctx, z, m.name, m.qtype); err != nil {
				return nil, err
			}
			answers[k] = have
		}
		for _, h := range have {
			switch h.Header().Rrtype {
			case dns.TypeSOA, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM, dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
				continue
			}
			switch {
			case m.ttl != 0 && h.Header().Ttl != m.ttl:
				continue
			case m.rr != nil && !dns.IsDuplicate(m.rr, h):
				continue
			case m.rr == nil && m.data != "" && !sameRecordData(dns.Type(h.Header().Rrtype).String(), rfc2136Record(h, z).RR().Data, m.data):
				continue
			}
			if !containsRR(found, h) {
				found = append(found, h)
			}
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	out := rfc2136Records(found, z)
	del := make([]dns.RR, len(found))
	for i, rr := range found {
		del[i] = dns.Copy(rr)
	}
	m := new(dns.Msg)
	m.SetUpdate(z)
	m.Remove(del)
	if err := p.update(ctx, z, m); err != nil {
		return nil, err
	}
	return out, nil
}

func containsRR(rrs []dns.RR, rr dns.RR) bool {
	for _, r := range rrs {
		if dns.IsDuplicate(r, rr) {
			return true
		}
	}
	return false
}

// lookup asks the nameserver for the records of name and type qtype.
func (p *rfc2136) lookup(ctx context.Context, zone, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	r, err := p.exchange(ctx, m)
	if err != nil {
		return nil, p.errorf("query for "+name+" "+dns.Type(qtype).String(), zone, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, fmt.Errorf("rfc2136: query for %s %s in zone %s at nameserver %s: %s: %s",
			name, dns.Type(qtype), zone, p.server, dns.RcodeToString[r.Rcode], rfc2136Hint(r.Rcode, 0, p.keyName))
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		h := rr.Header()
		if strings.EqualFold(h.Name, name) && h.Class == dns.ClassINET && (qtype == dns.TypeANY || h.Rrtype == qtype) {
			out = append(out, rr)
		}
	}
	return out, nil
}

// update sends update m for zone; it succeeds only if the nameserver
// answers NOERROR.
func (p *rfc2136) update(ctx context.Context, zone string, m *dns.Msg) error {
	r, err := p.exchange(ctx, m)
	if err != nil {
		return p.errorf("update", zone, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("rfc2136: update of zone %s at nameserver %s: %s: %s",
			zone, p.server, dns.RcodeToString[r.Rcode], rfc2136Hint(r.Rcode, 0, p.keyName))
	}
	return nil
}

// tsigError is a nameserver's refusal of our TSIG (RFC 8945 section 5.2).
type tsigError struct {
	rcode, tsig int
	key         string
}

func (e *tsigError) Error() string {
	return fmt.Sprintf("%s (TSIG %s): %s", dns.RcodeToString[e.rcode], dns.RcodeToString[e.tsig], rfc2136Hint(e.rcode, e.tsig, e.key))
}

// exchange signs m, sends it over TCP and returns the reply, which must be
// signed with the key too. It honours ctx's deadline and cancellation.
func (p *rfc2136) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	m.SetTsig(p.keyName, p.alg, rfc2136Fudge, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: p.timeout, TsigSecret: map[string]string{p.keyName: p.secret}}
	conn, err := c.DialContext(ctx, p.server)
	if err != nil {
		return nil, p.ctxErr(ctx, err)
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if r != nil {
		if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
			return nil, &tsigError{rcode: r.Rcode, tsig: int(t.Error), key: p.keyName}
		}
	}
	if err != nil && errors.Is(err, dns.ErrAuth) && r != nil && r.Rcode == dns.RcodeNotAuth {
		// miekg/dns does not verify NOTAUTH replies. Believing an
		// unverified failure is harmless: the caller reports it.
		return r, nil
	}
	if err != nil {
		if errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrSecret) || errors.Is(err, dns.ErrTime) {
			err = fmt.Errorf("the reply's TSIG did not verify: %w", err)
		}
		return nil, p.ctxErr(ctx, err)
	}
	if r.IsTsig() == nil {
		if r.Rcode != dns.RcodeSuccess {
			return nil, fmt.Errorf("unsigned reply %s: %s", dns.RcodeToString[r.Rcode], rfc2136Hint(r.Rcode, 0, p.keyName))
		}
		return nil, errors.New("the reply is not signed with the TSIG key; not believing it")
	}
	return r, nil
}

// ctxErr prefers ctx's error to the network error its end caused.
func (p *rfc2136) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func (p *rfc2136) errorf(what, zone string, err error) error {
	return fmt.Errorf("rfc2136: %s of zone %s at nameserver %s: %w", what, zone, p.server, err)
}

// rfc2136Hint says what an error rcode (and TSIG error, if any) likely
// means for a dynamic update client.
func rfc2136Hint(rcode, tsig int, key string) string {
	key = strings.TrimSuffix(key, ".")
	switch tsig {
	case dns.RcodeBadKey:
		return fmt.Sprintf("the nameserver does not know TSIG key %s with this algorithm; check RFC2136_TSIG_KEY and RFC2136_TSIG_ALGORITHM", key)
	case dns.RcodeBadSig:
		return fmt.Sprintf("the signature with TSIG key %s did not verify; check RFC2136_TSIG_SECRET and RFC2136_TSIG_ALGORITHM", key)
	case dns.RcodeBadTime:
		return "the clocks of this host and the nameserver differ by more than 5 minutes"
	}
	switch rcode {
	case dns.RcodeRefused:
		return fmt.Sprintf("the TSIG key %s may be wrong or lack permission for this zone (bind: update-policy { grant %s zonesub ANY; };)", key, key)
	case dns.RcodeNotAuth:
		return fmt.Sprintf("the nameserver is not authoritative for the zone, or TSIG key %s is wrong", key)
	case dns.RcodeNotZone:
		return "a name is not inside the zone"
	case dns.RcodeServerFailure:
		return "the nameserver failed; see its log"
	case dns.RcodeNotImplemented:
		return "the nameserver does not support dynamic updates"
	case dns.RcodeFormatError:
		return "the nameserver could not parse the request"
	}
	return "the nameserver refused the request"
}

// rfc2136Zone returns zone as an absolute domain name.
func rfc2136Zone(zone string) (string, error) {
	z := dns.Fqdn(strings.TrimSpace(zone))
	if _, ok := dns.IsDomainName(z); !ok || z == "." {
		return "", fmt.Errorf("rfc2136: %q is not a zone name", zone)
	}
	return z, nil
}

// rfc2136Name returns the absolute name of record name in zone z, which it
// must lie in.
func rfc2136Name(name, z string) (string, error) {
	abs := zoneAbsName(name, z)
	if _, ok := dns.IsDomainName(abs); !ok || !dns.IsSubDomain(z, abs) {
		return "", fmt.Errorf("rfc2136: record name %q is not inside zone %s", name, z)
	}
	return abs, nil
}

func rfc2136RRs(recs []libdns.Record, z string) ([]dns.RR, error) {
	out := make([]dns.RR, 0, len(recs))
	for _, rec := range recs {
		rr, err := rfc2136RR(rec.RR(), z)
		if err != nil {
			return nil, err
		}
		out = append(out, rr)
	}
	return out, nil
}

// rfc2136RR converts rr into a miekg/dns RR in zone z. A TTL of 0 becomes
// rfc2136DefaultTTL.
func rfc2136RR(rr libdns.RR, z string) (dns.RR, error) {
	bad := func(format string, args ...any) (dns.RR, error) {
		return nil, fmt.Errorf("rfc2136: record %s %q in zone %s: "+format, append([]any{rr.Type, rr.Name, z}, args...)...)
	}
	if rr.Name == "" {
		return bad("the record has no name")
	}
	name, err := rfc2136Name(rr.Name, z)
	if err != nil {
		return nil, err
	}
	typ := strings.ToUpper(rr.Type)
	t, ok := dns.StringToType[typ]
	if !ok || typ == "ANY" || typ == "AXFR" || typ == "IXFR" || typ == "OPT" || typ == "TSIG" {
		return bad("unsupported type")
	}
	if rr.Data == "" {
		return bad("the record has no value")
	}
	ttl := uint32(rr.TTL / time.Second)
	if rr.TTL == 0 {
		ttl = rfc2136DefaultTTL
	}
	hdr := dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	switch t {
	case dns.TypeA, dns.TypeAAAA:
		ip, err := netip.ParseAddr(rr.Data)
		if err != nil {
			return bad("%v", err)
		}
		ip = ip.Unmap()
		if ip.Is4() != (t == dns.TypeA) || ip.Zone() != "" {
			return bad("%s is not an address for this type", ip)
		}
		if t == dns.TypeA {
			return &dns.A{Hdr: hdr, A: ip.AsSlice()}, nil
		}
		return &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}, nil
	case dns.TypeTXT:
		return &dns.TXT{Hdr: hdr, Txt: rfc2136SplitTXT(rr.Data)}, nil
	}
	if strings.ContainsAny(rr.Data, "\n\r;()") {
		return bad("the value has a newline or one of ; ( )")
	}
	parsed, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, ttl, typ, rr.Data))
	if err != nil {
		return bad("%v", err)
	}
	if parsed == nil || parsed.Header().Rrtype != t {
		return bad("cannot parse the value %q", rr.Data)
	}
	return parsed, nil
}

func rfc2136Records(rrs []dns.RR, z string) []libdns.Record {
	out := make([]libdns.Record, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rfc2136Record(rr, z))
	}
	return out
}

// rfc2136Record converts rr of zone z into a libdns record: Address or TXT
// for those types, CNAME, MX or NS for those, RR for the others.
func rfc2136Record(rr dns.RR, z string) libdns.Record {
	h := rr.Header()
	name := zoneRelName(h.Name, z)
	ttl := time.Duration(h.Ttl) * time.Second
	switch v := rr.(type) {
	case *dns.A:
		if ip, ok := netip.AddrFromSlice(v.A); ok {
			return libdns.Address{Name: name, TTL: ttl, IP: ip.Unmap()}
		}
	case *dns.AAAA:
		if ip, ok := netip.AddrFromSlice(v.AAAA); ok {
			return libdns.Address{Name: name, TTL: ttl, IP: ip}
		}
	case *dns.TXT:
		return libdns.TXT{Name: name, TTL: ttl, Text: rfc2136JoinTXT(v.Txt)}
	}
	typ := dns.Type(h.Rrtype).String()
	data := strings.TrimPrefix(rr.String(), h.String())
	r := libdns.RR{Name: name, TTL: ttl, Type: typ, Data: data}
	switch h.Rrtype {
	case dns.TypeCNAME, dns.TypeMX, dns.TypeNS:
		if rec, err := r.Parse(); err == nil {
			return rec
		}
	}
	return r
}

// rfc2136SplitTXT splits text into character strings of at most 255 bytes
// in miekg/dns's escaped form.
func rfc2136SplitTXT(text string) []string {
	var out []string
	for first := true; first || text != ""; first = false {
		chunk := text[:min(len(text), 255)]
		text = text[len(chunk):]
		var b strings.Builder
		for i := 0; i < len(chunk); i++ {
			c := chunk[i]
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < ' ' || c > '~':
				fmt.Fprintf(&b, "\\%03d", c)
			default:
				b.WriteByte(c)
			}
		}
		out = append(out, b.String())
	}
	return out
}

// rfc2136JoinTXT joins character strings in miekg/dns's escaped form into
// the raw text.
func rfc2136JoinTXT(txt []string) string {
	var b strings.Builder
	for _, s := range txt {
		for i := 0; i < len(s); i++ {
			if s[i] != '\\' || i+1 >= len(s) {
				b.WriteByte(s[i])
				continue
			}
			if i+3 < len(s) && isDecimalDigit(s[i+1]) && isDecimalDigit(s[i+2]) && isDecimalDigit(s[i+3]) {
				if n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0'); n <= 255 {
					b.WriteByte(byte(n))
					i += 3
					continue
				}
			}
			i++
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
