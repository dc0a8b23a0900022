package provider

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/libdns"
)

// Tencent Cloud DNSPod, API 3.0 version 2021-03-23: JSON bodies POSTed to
// one endpoint, the action in the X-TC-Action header, signed with
// TC3-HMAC-SHA256. The zone is the DNSPod "Domain" (no trailing dot), a
// record name its "SubDomain" ("@" for the apex).
const (
	dnspodEndpoint = "https://dnspod.tencentcloudapi.com/"
	dnspodVersion  = "2021-03-23"
	dnspodService  = "dnspod" // in the credential scope
	dnspodLine     = "默认"     // the default resolution line
	dnspodPageSize = 3000     // the most DescribeRecordList returns at once
	dnspodMaxPages = 100      // a bound on a runaway pagination

	tc3ContentType = "application/json; charset=utf-8"
)

// dnsPod is the recordAPI of DNSPod.
type dnsPod struct {
	api       httpAPI
	endpoint  string // dnspodEndpoint; tests use an httptest server
	secretID  string // TENCENTCLOUD_SECRET_ID
	secretKey string // TENCENTCLOUD_SECRET_KEY
	now       func() time.Time
}

func newDNSPod(creds Credentials) (Provider, error) {
	return &recordProvider{name: "dnspod", api: newDNSPodAPI(creds)}, nil
}

func newDNSPodAPI(creds Credentials) *dnsPod {
	return &dnsPod{
		api:       newHTTPAPI(),
		endpoint:  dnspodEndpoint,
		secretID:  creds["TENCENTCLOUD_SECRET_ID"],
		secretKey: creds["TENCENTCLOUD_SECRET_KEY"],
		now:       time.Now,
	}
}

// dnspodRecord is a record in a DescribeRecordList reply.
type dnspodRecord struct {
	RecordId uint64
	Name     string
	Type     string
	Value    string
	Line     string
	TTL      uint64
	MX       uint64
}

// dnspodListReply is the Response of a DescribeRecordList reply.
type dnspodListReply struct {
	RecordCountInfo struct {
		TotalCount uint64
	}
	RecordList []dnspodRecord
}

// dnspodNoRecords is the error code DescribeRecordList answers an empty
// list with.
const dnspodNoRecords = "ResourceNotFound.NoDataOfRecord"

// dnspodParse reads a reply, {"Response": {...}}, into out (which may be
// nil). When the Response holds an Error, it returns its code and
// message and leaves out alone.
func dnspodParse(body []byte, out any) (code, message string, err error) {
	var env struct{ Response json.RawMessage }
	if err := json.Unmarshal(body, &env); err != nil {
		return "", "", err
	}
	if len(env.Response) == 0 || string(env.Response) == "null" {
		return "", "", errors.New(`no "Response" object`)
	}
	var e struct {
		Error *struct{ Code, Message string }
	}
	if err := json.Unmarshal(env.Response, &e); err != nil {
		return "", "", err
	}
	if e.Error != nil && (e.Error.Code != "" || e.Error.Message != "") {
		return e.Error.Code, e.Error.Message, nil
	}
	if out == nil {
		return "", "", nil
	}
	return "", "", json.Unmarshal(env.Response, out)
}

// dnspodRecords turns a DescribeRecordList page into apiRecords.
func dnspodRecords(reply dnspodListReply) []apiRecord {
	recs := make([]apiRecord, 0, len(reply.RecordList))
	for _, r := range reply.RecordList {
		rr := libdns.RR{
			Name: r.Name,
			Type: strings.ToUpper(r.Type),
			TTL:  time.Duration(min(r.TTL, 1<<31)) * time.Second,
			Data: r.Value,
		}
		if rr.Type == "MX" {
			rr.Data = strconv.FormatUint(r.MX, 10) + " " + r.Value
		}
		recs = append(recs, apiRecord{ID: strconv.FormatUint(r.RecordId, 10), Line: r.Line, RR: rr})
	}
	return recs
}

// dnspodTemporary reports whether an error code says to try again: rate
// limits and internal errors, which DNSPod sends with HTTP 200.
func dnspodTemporary(code string) bool {
	for _, c := range []string{"RequestLimitExceeded", "InternalError"} {
		if code == c || strings.HasPrefix(code, c+".") {
			return true
		}
	}
	return false
}

func (d *dnsPod) list(ctx context.Context, zone, name, typ string) ([]apiRecord, error) {
	req := struct {
		Domain     string
		Subdomain  string `json:",omitempty"`
		RecordType string `json:",omitempty"`
		Offset     int
		Limit      int
	}{Domain: zone, Subdomain: name, RecordType: typ, Limit: dnspodPageSize}
	var out []apiRecord
	for range dnspodMaxPages {
		var reply dnspodListReply
		err := d.call(ctx, "DescribeRecordList", req, &reply)
		if serr := (*StatusError)(nil); errors.As(err, &serr) && serr.Code == dnspodNoRecords {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		recs := dnspodRecords(reply)
		for _, r := range recs {
			if (name == "" || strings.EqualFold(r.RR.Name, name)) && (typ == "" || r.RR.Type == typ) {
				out = append(out, r)
			}
		}
		req.Offset += len(recs)
		if len(recs) == 0 || uint64(req.Offset) >= reply.RecordCountInfo.TotalCount {
			return out, nil
		}
	}
	return nil, fmt.Errorf("dnspod DescribeRecordList: zone %s has more than %d pages of records", zone, dnspodMaxPages)
}

// dnspodRecordReq are the fields CreateRecord and ModifyRecord share.
type dnspodRecordReq struct {
	Domain     string
	RecordId   uint64 `json:",omitempty"` // ModifyRecord only
	SubDomain  string
	RecordType string
	RecordLine string
	Value      string
	TTL        int64
	MX         int64 `json:",omitempty"`
}

func dnspodRecordRequest(zone string, rr libdns.RR, line string) (dnspodRecordReq, error) {
	req := dnspodRecordReq{
		Domain:     zone,
		SubDomain:  rr.Name,
		RecordType: rr.Type,
		RecordLine: line,
		Value:      rr.Data,
		TTL:        apiTTL(rr),
	}
	if rr.Type == "MX" {
		pref, target, err := apiSplitMX(rr.Data)
		if err != nil {
			return req, err
		}
		req.MX, req.Value = pref, target
	}
	return req, nil
}

func (d *dnsPod) create(ctx context.Context, zone string, rr libdns.RR) (string, error) {
	req, err := dnspodRecordRequest(zone, rr, dnspodLine)
	if err != nil {
		return "", err
	}
	var reply struct{ RecordId uint64 }
	if err := d.call(ctx, "CreateRecord", req, &reply); err != nil {
		return "", err
	}
	return strconv.FormatUint(reply.RecordId, 10), nil
}

func (d *dnsPod) update(ctx context.Context, zone string, old apiRecord, rr libdns.RR) error {
	id, err := strconv.ParseUint(old.ID, 10, 64)
	if err != nil {
		return fmt.Errorf("dnspod: bad record ID %q", old.ID)
	}
	line := old.Line
	if line == "" {
		line = dnspodLine
	}
	req, err := dnspodRecordRequest(zone, rr, line)
	if err != nil {
		return err
	}
	req.RecordId = id
	return d.call(ctx, "ModifyRecord", req, nil)
}

func (d *dnsPod) remove(ctx context.Context, zone string, rec apiRecord) error {
	id, err := strconv.ParseUint(rec.ID, 10, 64)
	if err != nil {
		return fmt.Errorf("dnspod: bad record ID %q", rec.ID)
	}
	req := struct {
		Domain   string
		RecordId uint64
	}{zone, id}
	return d.call(ctx, "DeleteRecord", req, nil)
}

// call sends action with the JSON of in and reads the Response of the
// reply into out (when not nil). A refusal, whether with an HTTP error or
// in a 200 reply, is a *StatusError with the DNSPod code and message;
// rate limits and internal errors are retried.
func (d *dnsPod) call(ctx context.Context, action string, in, out any) error {
	payload, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("dnspod %s: %w", action, err)
	}
	wait := d.api.backoff
	for try := 1; ; try++ {
		body, err := d.api.do(ctx, "dnspod", action, func() (*http.Request, error) {
			return d.newRequest(action, payload)
		})
		if err != nil {
			if serr := (*StatusError)(nil); errors.As(err, &serr) {
				serr.Code, serr.Message, _ = dnspodParse(body, nil)
			}
			return err
		}
		code, msg, err := dnspodParse(body, out)
		if err != nil {
			return fmt.Errorf("dnspod %s: reading reply: %w", action, err)
		}
		if code == "" && msg == "" {
			return nil
		}
		serr := &StatusError{Provider: "dnspod", Op: action, Status: http.StatusOK, Code: code, Message: msg}
		if !dnspodTemporary(code) || try >= d.api.attempts {
			return serr
		}
		if err := apiSleep(ctx, wait); err != nil {
			return errors.Join(serr, err)
		}
		wait *= 2
	}
}

// newRequest builds the signed POST request for action with payload.
func (d *dnsPod) newRequest(action string, payload []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, d.endpoint, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	ts := d.now().Unix()
	req.Header.Set("Content-Type", tc3ContentType)
	req.Header.Set("Authorization", tc3Authorization(d.secretID, d.secretKey, dnspodService, req.URL.Host, payload, ts))
	req.Header.Set("X-TC-Action", action)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-TC-Version", dnspodVersion)
	return req, nil
}

// tc3CanonicalRequest is the canonical request of a POST to "/" of host
// with a JSON payload, signing the content-type and host headers.
func tc3CanonicalRequest(host string, payload []byte) string {
	return "POST\n" +
		"/\n" +
		"\n" + // no query string
		"content-type:" + tc3ContentType + "\n" +
		"host:" + strings.ToLower(host) + "\n" +
		"\n" +
		"content-type;host\n" +
		tc3Hash(payload)
}

// tc3Date is the UTC date of the Unix time ts, as the credential scope has it.
func tc3Date(ts int64) string {
	return time.Unix(ts, 0).UTC().Format("2006-01-02")
}

// tc3StringToSign is the string to sign for canonicalRequest sent at ts to
// service.
func tc3StringToSign(ts int64, service, canonicalRequest string) string {
	return "TC3-HMAC-SHA256\n" +
		strconv.FormatInt(ts, 10) + "\n" +
		tc3Date(ts) + "/" + service + "/tc3_request\n" +
		tc3Hash([]byte(canonicalRequest))
}

// tc3Authorization is the Authorization header of a TC3-HMAC-SHA256
// signed POST of payload to host at Unix time ts: the signing key is
// derived from "TC3"+secretKey through the date, the service and
// "tc3_request".
func tc3Authorization(secretID, secretKey, service, host string, payload []byte, ts int64) string {
	date := tc3Date(ts)
	key := tc3HMAC([]byte("TC3"+secretKey), date)
	key = tc3HMAC(key, service)
	key = tc3HMAC(key, "tc3_request")
	sig := hex.EncodeToString(tc3HMAC(key, tc3StringToSign(ts, service, tc3CanonicalRequest(host, payload))))
	return "TC3-HMAC-SHA256 Credential=" + secretID + "/" + date + "/" + service + "/tc3_request, " +
		"SignedHeaders=content-type;host, Signature=" + sig
}

func tc3HMAC(key []byte, msg string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

func tc3Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
