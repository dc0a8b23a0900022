package provider

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// apiDefaultTTL is the TTL, in seconds, of records whose caller left TTL
// at 0: the smallest one the free plans of Alibaba Cloud DNS and DNSPod
// accept, and their own default.
const apiDefaultTTL = 600

// recordAPI is a DNS API that keeps records under IDs of its own and
// changes them one at a time: Alibaba Cloud DNS and DNSPod. recordProvider
// builds the libdns semantics on top of it.
type recordAPI interface {
	// list returns the records of zone; with name (relative, "@" for the
	// apex) set only those of that exact name, and with typ set only
	// those of that type.
	list(ctx context.Context, zone, name, typ string) ([]apiRecord, error)
	create(ctx context.Context, zone string, rr libdns.RR) (id string, err error)
	// update changes record old to rr, keeping its ID.
	update(ctx context.Context, zone string, old apiRecord, rr libdns.RR) error
	remove(ctx context.Context, zone string, rec apiRecord) error
}

// apiRecord is a record as a recordAPI holds it. RR.Name is relative to
// the zone, RR.TTL whole seconds and, for MX, RR.Data is "preference
// target" as in a zone file.
type apiRecord struct {
	ID   string
	Line string // the provider's resolution line ("default", "默认"), kept on update
	RR   libdns.RR
}

// recordProvider implements Provider for a recordAPI.
//
// Neither API has transactions, so SetRecords is not atomic: when it fails
// halfway, the changes made so far stay and the error says which record
// failed. Changes through one recordProvider are serialised, so that the
// read-modify-write of SetRecords and DeleteRecords does not race another
// call from the same process.
type recordProvider struct {
	name string // for errors: "alidns", "dnspod"
	api  recordAPI
	mu   sync.Mutex // held by AppendRecords, SetRecords and DeleteRecords
}

// GetRecords returns all records of zone: A and AAAA as libdns.Address,
// TXT as libdns.TXT, other types parsed by libdns where it can (else
// libdns.RR).
func (p *recordProvider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	z, err := p.zone(zone)
	if err != nil {
		return nil, err
	}
	recs, err := p.api.list(ctx, z, "", "")
	if err != nil {
		return nil, fmt.Errorf("listing records of zone %s: %w", z, err)
	}
	out := make([]libdns.Record, 0, len(recs))
	for _, r := range recs {
		out = append(out, apiLibdnsRecord(r.RR))
	}
	return out, nil
}

// AppendRecords creates recs in zone. A TTL of 0 becomes 600 seconds. On
// an error it returns the records created before it.
func (p *recordProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, err := p.zone(zone)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []libdns.Record
	for _, rec := range recs {
		rr, err := apiInput(rec.RR(), z, true)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.name, err)
		}
		if _, err := p.api.create(ctx, z, rr); err != nil {
			return out, fmt.Errorf("adding %s record %q = %q to zone %s: %w", rr.Type, rr.Name, rr.Data, z, err)
		}
		out = append(out, apiLibdnsRecord(rr))
	}
	return out, nil
}

// SetRecords makes the records of recs the only ones of their (name,
// type) in zone. Existing records with a wanted value stay (their TTL
// updated if it differs), other existing ones are updated in place to a
// missing value, further missing values are created and the remaining
// existing records deleted, in that order, so that a name being updated
// does not go without an address. It is not atomic (see recordProvider).
func (p *recordProvider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, err := p.zone(zone)
	if err != nil {
		return nil, err
	}
	type key struct{ name, typ string }
	var order []key
	sets := map[key][]libdns.RR{}
	for _, rec := range recs {
		rr, err := apiInput(rec.RR(), z, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		k := key{strings.ToLower(rr.Name), rr.Type}
		if _, ok := sets[k]; !ok {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	var out []libdns.Record
	for _, k := range order {
		want := sets[k]
		name, typ := want[0].Name, want[0].Type
		have, err := p.api.list(ctx, z, name, typ)
		if err != nil {
			return out, fmt.Errorf("listing %s records %q of zone %s: %w", typ, name, z, err)
		}
		plan := apiPlanSet(have, want)
		for _, u := range plan.update {
			if err := p.api.update(ctx, z, u.old, u.rr); err != nil {
				return out, fmt.Errorf("updating %s record %q from %q to %q in zone %s: %w", typ, name, u.old.RR.Data, u.rr.Data, z, err)
			}
		}
		for _, rr := range plan.create {
			if _, err := p.api.create(ctx, z, rr); err != nil {
				return out, fmt.Errorf("adding %s record %q = %q to zone %s: %w", typ, name, rr.Data, z, err)
			}
		}
		for _, r := range plan.remove {
			if err := p.api.remove(ctx, z, r); err != nil {
				return out, fmt.Errorf("deleting %s record %q = %q from zone %s: %w", typ, name, r.RR.Data, z, err)
			}
		}
		for _, rr := range want {
			out = append(out, apiLibdnsRecord(rr))
		}
	}
	return out, nil
}

// DeleteRecords deletes the records of zone that match one of recs: same
// name, and same type, TTL and value unless those are left empty. It
// returns the records it deleted.
func (p *recordProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	z, err := p.zone(zone)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []libdns.Record
	deleted := map[string]bool{}
	for _, rec := range recs {
		in, err := apiInput(rec.RR(), z, false)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.name, err)
		}
		have, err := p.api.list(ctx, z, in.Name, in.Type)
		if err != nil {
			return out, fmt.Errorf("listing records %q of zone %s: %w", in.Name, z, err)
		}
		for _, r := range have {
			if deleted[r.ID] || !apiMatches(in, r.RR) {
				continue
			}
			if err := p.api.remove(ctx, z, r); err != nil {
				return out, fmt.Errorf("deleting %s record %q = %q from zone %s: %w", r.RR.Type, r.RR.Name, r.RR.Data, z, err)
			}
			deleted[r.ID] = true
			out = append(out, apiLibdnsRecord(r.RR))
		}
	}
	return out, nil
}

// zone returns zone without its trailing dot, as both APIs want it.
func (p *recordProvider) zone(zone string) (string, error) {
	z := strings.TrimSuffix(strings.TrimSpace(zone), ".")
	if z == "" {
		return "", fmt.Errorf("%s: empty zone name", p.name)
	}
	return z, nil
}

// apiInput checks and tidies a record a caller passed: the name relative
// to zone ("@" for the apex; an absolute name in zone is made relative),
// the type in upper case, the TTL in whole seconds. With full set (append
// and set), type and value are required and a TTL of 0 becomes
// apiDefaultTTL; for DeleteRecords they may be empty.
func apiInput(rr libdns.RR, zone string, full bool) (libdns.RR, error) {
	name := strings.TrimSpace(rr.Name)
	switch {
	case name == "" && !full:
		return rr, fmt.Errorf("record to delete has no name (use \"@\" for the apex)")
	case name == "" || name == "@":
		name = "@"
	case strings.HasSuffix(name, "."):
		fqdn := strings.TrimSuffix(name, ".")
		switch {
		case strings.EqualFold(fqdn, zone):
			name = "@"
		case len(fqdn) > len(zone)+1 && strings.EqualFold(fqdn[len(fqdn)-len(zone)-1:], "."+zone):
			name = fqdn[:len(fqdn)-len(zone)-1]
		default:
			return rr, fmt.Errorf("record name %q is not in zone %s", rr.Name, zone)
		}
	}
	out := libdns.RR{
		Name: name,
		Type: strings.ToUpper(strings.TrimSpace(rr.Type)),
		TTL:  rr.TTL.Truncate(time.Second),
		Data: rr.Data,
	}
	if !full {
		return out, nil
	}
	if out.Type == "" {
		return out, fmt.Errorf("record %q has no type", rr.Name)
	}
	if out.Data == "" {
		return out, fmt.Errorf("%s record %q has no value", out.Type, rr.Name)
	}
	if out.TTL <= 0 {
		out.TTL = apiDefaultTTL * time.Second
	}
	return out, nil
}

// apiTTL is rr's TTL in whole seconds, apiDefaultTTL for 0.
func apiTTL(rr libdns.RR) int64 {
	if s := int64(rr.TTL / time.Second); s > 0 {
		return s
	}
	return apiDefaultTTL
}

// apiLibdnsRecord returns rr as the libdns type for its record type
// (Address, TXT, CNAME, MX, ...), or rr itself when libdns has no such
// type or cannot parse the value.
func apiLibdnsRecord(rr libdns.RR) libdns.Record {
	rec, err := rr.Parse()
	if err != nil {
		return rr
	}
	return rec
}

// apiMatches reports whether zone record z matches DeleteRecords input
// in: same name, and same type, TTL and value where in gives them.
func apiMatches(in, z libdns.RR) bool {
	return strings.EqualFold(in.Name, z.Name) &&
		(in.Type == "" || in.Type == z.Type) &&
		(in.TTL == 0 || in.TTL == z.TTL) &&
		(in.Data == "" || apiSameData(z.Type, in.Data, z.Data))
}

// apiSameData reports whether two values of a record of type typ are the
// same: addresses compare as addresses ("2001:DB8::1" is "2001:db8::1"),
// host names without case and trailing dot, anything else byte for byte.
func apiSameData(typ, a, b string) bool {
	if a == b {
		return true
	}
	switch typ {
	case "A", "AAAA":
		x, errX := netip.ParseAddr(a)
		y, errY := netip.ParseAddr(b)
		return errX == nil && errY == nil && x == y
	case "CNAME", "NS", "PTR", "MX":
		return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
	}
	return false
}

// apiPlan is what SetRecords does to one RRset.
type apiPlan struct {
	update []apiUpdate
	create []libdns.RR
	remove []apiRecord
}

type apiUpdate struct {
	old apiRecord
	rr  libdns.RR
}

// apiPlanSet plans turning the records have into want (one RRset): keep
// the records whose value is wanted (updating a differing TTL), reuse the
// others for missing values, create what is still missing and remove
// what is left.
func apiPlanSet(have []apiRecord, want []libdns.RR) apiPlan {
	var plan apiPlan
	used := make([]bool, len(have))
	var missing []libdns.RR
	for _, w := range want {
		found := false
		for i, h := range have {
			if used[i] || !apiSameData(w.Type, w.Data, h.RR.Data) {
				continue
			}
			used[i], found = true, true
			if apiTTL(h.RR) != apiTTL(w) {
				plan.update = append(plan.update, apiUpdate{old: h, rr: w})
			}
			break
		}
		if !found {
			missing = append(missing, w)
		}
	}
	for i, h := range have {
		if used[i] {
			continue
		}
		if len(missing) > 0 {
			plan.update = append(plan.update, apiUpdate{old: h, rr: missing[0]})
			missing = missing[1:]
			continue
		}
		plan.remove = append(plan.remove, h)
	}
	plan.create = missing
	return plan
}

// apiSplitMX splits the data of an MX record, "10 mail.example.net.",
// into preference and target, as both APIs take them apart.
func apiSplitMX(data string) (pref int64, target string, err error) {
	f := strings.Fields(data)
	if len(f) != 2 {
		return 0, "", fmt.Errorf("MX value %q: want \"preference target\"", data)
	}
	pref, err = strconv.ParseInt(f[0], 10, 32)
	if err != nil || pref < 0 {
		return 0, "", fmt.Errorf("MX value %q: bad preference %q", data, f[0])
	}
	return pref, f[1], nil
}

// apiSleep waits d, or less if ctx ends first.
func apiSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
