package provider

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/libdns/libdns"
)

// Provider reads and changes the records of a zone at a DNS provider. Zone
// names are absolute ("example.net."); record names are relative to the
// zone ("home", "@" for the apex), as libdns prescribes.
type Provider interface {
	libdns.RecordGetter
	libdns.RecordAppender
	libdns.RecordSetter
	libdns.RecordDeleter
}

// Names lists the providers New knows, in the order docs show them.
var Names = []string{"alidns", "dnspod", "cloudflare", "rfc2136"}

// Keys returns the credential keys provider name needs (required first,
// then optional ones), or nil for an unknown provider. They double as
// environment variable names.
func Keys(name string) (required, optional []string) {
	switch name {
	case "alidns":
		return []string{"ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY"}, []string{"ALICLOUD_SECURITY_TOKEN"}
	case "dnspod":
		return []string{"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"}, nil
	case "cloudflare":
		return []string{"CLOUDFLARE_DNS_API_TOKEN"}, []string{"CLOUDFLARE_ZONE_ID"}
	case "rfc2136":
		return []string{"RFC2136_NAMESERVER", "RFC2136_TSIG_KEY", "RFC2136_TSIG_SECRET"}, []string{"RFC2136_TSIG_ALGORITHM"}
	}
	return nil, nil
}

// Credentials are a provider's settings and secrets, by the keys Keys
// names. Their String method hides the values.
type Credentials map[string]string

// String lists the keys only, so a Credentials in a log line leaks nothing.
func (c Credentials) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return "credentials{" + strings.Join(keys, ",") + "}"
}

// New returns the provider called name with creds, after checking that
// every required key is there.
func New(name string, creds Credentials) (Provider, error) {
	required, _ := Keys(name)
	if required == nil {
		return nil, fmt.Errorf("unknown DNS provider %q (want one of %s)", name, strings.Join(Names, ", "))
	}
	for _, k := range required {
		if creds[k] == "" {
			return nil, fmt.Errorf("%s: credential %s is missing", name, k)
		}
	}
	switch name {
	case "alidns":
		return newAliDNS(creds)
	case "dnspod":
		return newDNSPod(creds)
	case "cloudflare":
		return newCloudflare(creds)
	default:
		return newRFC2136(creds)
	}
}

// LoadCredentials reads provider name's credentials from the file at path,
// or, when path is empty, from the environment through getenv. The file
// holds KEY=VALUE lines (blank lines and lines starting with # are
// skipped; a value may be in double or single quotes) and must not be
// readable by group or others: it is refused otherwise. Keys the provider
// does not know are an error, to catch typos.
func LoadCredentials(name, path string, getenv func(string) string) (Credentials, error) {
	required, optional := Keys(name)
	if required == nil {
		return nil, fmt.Errorf("unknown DNS provider %q (want one of %s)", name, strings.Join(Names, ", "))
	}
	known := append(slices.Clone(required), optional...)
	c := Credentials{}
	if path == "" {
		for _, k := range known {
			if v := getenv(k); v != "" {
				c[k] = v
			}
		}
		return c, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("credentials file %s has mode %04o: it must not be readable by group or others; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("credentials file %s line %d: want KEY=VALUE", path, n)
		}
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("credentials file %s line %d: %s is not a %s key (want %s)", path, n, k, name, strings.Join(known, ", "))
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		c[k] = v
	}
	return c, sc.Err()
}
