// Package provider talks to DNS providers' APIs through the libdns record
// interfaces: Alibaba Cloud DNS (alidns), Tencent Cloud DNSPod (dnspod),
// Cloudflare (cloudflare) and RFC 2136 dynamic update with TSIG (rfc2136).
// homenet uses one Provider both to keep its name's A and AAAA records
// current (package ddns) and to answer ACME DNS-01 challenges (TXT records).
//
// Each provider signs its requests as its public API documentation says;
// the libdns provider modules are not used. The HTTP providers retry
// transient failures (network errors, HTTP 429 and 5xx, the providers' own
// throttling codes) a few times with a short back-off; rfc2136 fails within
// its 10 s timeout and leaves retrying to the caller. Errors name the
// provider, the operation and the provider's own error code and message.
// Credentials never appear in errors.
//
// Files: provider.go (New, Credentials), http.go (retries shared by the
// HTTP APIs), apirecords.go (libdns semantics over a list/create/update/
// remove API, for alidns and dnspod), alidns.go, dnspod.go, cloudflare.go,
// rfc2136.go.
package provider
