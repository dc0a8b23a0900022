package lab

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An authoritative DNS server inside the lab: Debian's bind9 (named 9.18),
// serving one zone that a TSIG key may update (RFC 2136), as a DDNS
// provider or a self-hosted primary would. Clients: dig and nsupdate from
// bind9-dnsutils.

// NeedsBINDMessage is the reason DNS scenarios skip without bind9.
const NeedsBINDMessage = "e2e: named or dig/nsupdate not found; install them: apt-get install -y bind9 bind9-dnsutils"

// BINDKeyName and BINDAlgorithm name the TSIG key of every lab BIND.
const (
	BINDKeyName   = "hn-lab-key"
	BINDAlgorithm = "hmac-sha256"
)

// BIND is named running in a lab host, authoritative for Zone, without
// recursion.
type BIND struct {
	Host *Host
	// Zone is the zone's name without the final dot, e.g. "hn.test".
	Zone string
	// Addrs are where named answers on port 53: the host's IPv4 address,
	// then its IPv6 address if it has one.
	Addrs []netip.AddrPort
	// The TSIG key that may add and delete any record in Zone: its name
	// (BINDKeyName), base64 secret and algorithm (BINDAlgorithm).
	KeyName, Secret, Algorithm string
	// KeyFile holds the key in named.conf syntax, for `nsupdate -k`.
	KeyFile string
	// LogPath is named's log (its stdout is Proc's): queries ("query: NAME IN TYPE"), updates
	// ("updating zone … adding an RR at …") and refusals.
	LogPath string
	Proc    *Proc
}

// BINDBinaries returns the paths of named, dig and nsupdate, skipping the
// test if one is missing.
func BINDBinaries(t testing.TB) (named, dig, nsupdate string) {
	t.Helper()
	var paths []string
	for _, name := range []string{"named", "dig", "nsupdate"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skip(NeedsBINDMessage)
		}
		paths = append(paths, p)
	}
	return paths[0], paths[1], paths[2]
}

// BIND starts named in h, on port 53 of h's IPv4 and IPv6 addresses (and
// loopback), authoritative for zone (e.g. "hn.test"): SOA, NS ns1 with
// ns1's A and AAAA records naming h, TTL 60, and records, zone-file lines
// relative to the zone ("ca A 198.51.100.10"). A new TSIG key may update
// anything in the zone. It waits until named answers and skips the test if
// bind9 is not installed.
func (l *Lab) BIND(h *Host, zone string, records ...string) *BIND {
	l.t.Helper()
	named, _, _ := BINDBinaries(l.t)
	zone = strings.TrimSuffix(zone, ".")
	dir := h.Dir + "/bind"
	if err := os.MkdirAll(dir, 0o755); err != nil { // named writes its journal here
		l.t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	b := &BIND{
		Host:      h,
		Zone:      zone,
		KeyName:   BINDKeyName,
		Secret:    base64.StdEncoding.EncodeToString(secret),
		Algorithm: BINDAlgorithm,
		KeyFile:   dir + "/tsig.key",
		LogPath:   h.Dir + "/bind.log",
	}
	listen4, listen6 := "127.0.0.1;", "::1;"
	zoneText := fmt.Sprintf("$ORIGIN %s.\n$TTL 60\n@\tIN SOA ns1 hostmaster ( 1 60 30 600 30 )\n\tIN NS ns1\n", zone)
	a4 := h.Addr()
	b.Addrs = append(b.Addrs, netip.AddrPortFrom(a4, 53))
	listen4 += " " + a4.String() + ";"
	zoneText += fmt.Sprintf("ns1\tIN A %v\n", a4)
	if len(h.addrs6) > 0 {
		a6 := h.Addr6()
		b.Addrs = append(b.Addrs, netip.AddrPortFrom(a6, 53))
		listen6 += " " + a6.String() + ";"
		zoneText += fmt.Sprintf("ns1\tIN AAAA %v\n", a6)
	}
	for _, r := range records {
		zoneText += r + "\n"
	}
	key := fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", b.KeyName, b.Algorithm, b.Secret)
	conf := fmt.Sprintf(`options {
	directory %[1]q;
	pid-file "named.pid";
	session-keyfile "session.key";
	managed-keys-directory %[1]q;
	listen-on port 53 { %[2]s };
	listen-on-v6 port 53 { %[3]s };
	recursion no;
	allow-query { any; };
	allow-transfer { none; };
	dnssec-validation no;
	notify no;
	querylog yes;
};
controls { };
include %[4]q;
logging {
	channel lab { file %[5]q; severity info; print-time yes; print-category yes; print-severity yes; };
	category default { lab; };
	category queries { lab; };
	category update { lab; };
	category update-security { lab; };
};
zone %[6]q {
	type primary;
	file "zone.db";
	update-policy { grant %[7]s zonesub ANY; };
};
`, dir, listen4, listen6, b.KeyFile, b.LogPath, zone, b.KeyName)
	files := map[string]string{"named.conf": conf, "tsig.key": key, "zone.db": zoneText}
	for name, text := range files {
		if err := os.WriteFile(dir+"/"+name, []byte(text), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	b.Proc = h.Start("named", nil, named, "-f", "-u", "root", "-n", "1", "-c", dir+"/named.conf")
	l.OnFailure(func() {
		l.t.Logf("---- bind9 log on %s (%s), last lines ----\n%s", h.Name, b.LogPath, tail(b.Log(), 40))
	})
	took := WaitFor(l.t, 20*time.Second, "named on "+h.Name+" to answer for "+zone, func() error {
		if exited, err := b.Proc.Exited(); exited {
			return fmt.Errorf("named exited: %v\n%s\n%s", err, b.Proc.Tail(20), tail(b.Log(), 20))
		}
		soa, err := b.Lookup(zone, "SOA")
		if err == nil && len(soa) == 0 {
			err = fmt.Errorf("no SOA for %s yet", zone)
		}
		return err
	})
	l.t.Logf("lab: bind9 authoritative for %s at %v up in %v", zone, b.Addrs, took.Round(time.Millisecond))
	return b
}

// Name returns label.Zone, e.g. Name("home") = "home.hn.test".
func (b *BIND) Name(label string) string { return label + "." + b.Zone }

// Lookup asks named (at its first address, without recursion) for name's
// records of type qtype ("AAAA", "TXT", …) and returns them as dig +short
// prints them; none is no error.
func (b *BIND) Lookup(name, qtype string) ([]string, error) {
	_, dig, _ := BINDBinaries(b.Host.lab.t)
	out, err := b.Host.Output(10*time.Second, dig, "+short", "+norec", "+tries=1", "+time=2",
		"@"+b.Addrs[0].Addr().String(), name, qtype)
	return fields(out), err
}

// Update sends nsupdate commands ("update add home.hn.test 60 AAAA
// 2001:db8:100::2", "update delete …") from host from to named's first
// address, signed with the TSIG key, and returns nsupdate's error, which
// names the response code when named refused.
func (b *BIND) Update(from *Host, cmds ...string) error {
	_, _, nsupdate := BINDBinaries(b.Host.lab.t)
	script := fmt.Sprintf("server %s %d\nzone %s.\n%s\nsend\n",
		b.Addrs[0].Addr(), b.Addrs[0].Port(), b.Zone, strings.Join(cmds, "\n"))
	_, err := from.RunTimeout(20*time.Second, "sh", "-c", `printf '%s' "$1" | "$2" -t 5 -k "$3"`,
		"sh", script, nsupdate, b.KeyFile)
	return err
}

// UseAsResolver makes named the resolver of each host: it writes the
// host's private /etc/resolv.conf, with the zone as search domain.
func (b *BIND) UseAsResolver(hosts ...*Host) {
	t := b.Host.lab.t
	t.Helper()
	var conf strings.Builder
	for _, ap := range b.Addrs {
		fmt.Fprintf(&conf, "nameserver %v\n", ap.Addr())
	}
	fmt.Fprintf(&conf, "search %s\noptions timeout:1 attempts:2\n", b.Zone)
	for _, h := range hosts {
		if err := h.WriteFile("/etc/resolv.conf", []byte(conf.String())); err != nil {
			t.Fatal(err)
		}
	}
}

// Log returns named's log so far.
func (b *BIND) Log() string {
	data, _ := os.ReadFile(b.LogPath)
	return string(data)
}

// Resolve looks name up with dig through h's /etc/resolv.conf (its
// nameservers and search list) and returns
// the records of type qtype as dig +short prints them; none is no error.
func (h *Host) Resolve(name, qtype string) ([]string, error) {
	_, dig, _ := BINDBinaries(h.lab.t)
	out, err := h.Output(10*time.Second, dig, "+short", "+search", "+tries=2", "+time=1", name, qtype)
	return fields(out), err
}

func fields(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
