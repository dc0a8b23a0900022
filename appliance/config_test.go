package appliance

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		wantErr string // substring; empty means valid
		check   func(t *testing.T, c Config)
	}{
		{
			name: "documented example",
			toml: `
state_dir = "/var/lib/homenet"
[server]
url = "http://203.0.113.10:8080"
listen = ":8080"
[relay]
enabled = true
listen = ":8443"
stun_listen = ":3478"
[tailnet]
prefix4 = ""
`,
			check: func(t *testing.T, c Config) {
				if p, _ := c.Prefix4(); p != DefaultPrefix4 {
					t.Errorf("prefix4 = %v, want default %v", p, DefaultPrefix4)
				}
				if c.RelayHostname() != "203.0.113.10" {
					t.Errorf("relay hostname = %q", c.RelayHostname())
				}
				if c.AdminSocket() != "/var/lib/homenet/admin.sock" {
					t.Errorf("admin socket = %q", c.AdminSocket())
				}
			},
		},
		{
			name: "non-CGNAT prefix",
			toml: "[tailnet]\nprefix4 = \"10.77.0.0/16\"\n",
			check: func(t *testing.T, c Config) {
				if p, _ := c.Prefix4(); p != netip.MustParsePrefix("10.77.0.0/16") {
					t.Errorf("prefix4 = %v", p)
				}
			},
		},
		{
			name: "empty file keeps defaults",
			toml: "",
			check: func(t *testing.T, c Config) {
				if !c.Relay.Enabled || c.Server.Listen != ":8080" || c.StateDir != "/var/lib/homenet" {
					t.Errorf("defaults lost: %+v", c)
				}
			},
		},
		{name: "unknown key", toml: "[relay]\nlisen = \":1\"\n", wantErr: "relay.lisen: unknown key"},
		{name: "syntax error", toml: "[server\n", wantErr: "line 2"},
		{name: "wrong type", toml: "[relay]\nenabled = \"yes\"\n", wantErr: "line 2: relay.enabled: want true or false, got a string"},
		{name: "routes not a list", toml: "[gateway]\nroutes = \"192.168.1.0/24\"\n", wantErr: `line 2: gateway.routes: want a list of strings in brackets, such as ["…", "…"], got a string`},
		{name: "route not a string", toml: "[gateway]\nroutes = [1]\n", wantErr: "gateway.routes: want a list of strings"},
		{name: "ttl a string", toml: "[ddns]\nttl = \"600\"\n", wantErr: "line 2: ddns.ttl: want a whole number, got a string"},
		{name: "ttl a fraction", toml: "[ddns]\nttl = 1.5\n", wantErr: "ddns.ttl: want a whole number, got a number with a fraction"},
		{name: "url a number", toml: "\n\n[server]\nurl = 8080\n", wantErr: "line 4: server.url: want a string in double quotes, got a whole number"},
		{name: "section a value", toml: "relay = true\n", wantErr: "line 1: relay: want a [relay] section, got true or false"},
		{name: "section an array of tables", toml: "[[gateway]]\nenabled = true\n", wantErr: "gateway: want a [gateway] section, got an array of tables"},
		{name: "bool a date", toml: "[upnp]\nenabled = 2026-01-01\n", wantErr: "upnp.enabled: want true or false, got a date or time"},
		{name: "bad prefix", toml: "[tailnet]\nprefix4 = \"10.77.0.0/33\"\n", wantErr: "tailnet.prefix4"},
		{name: "prefix host bits", toml: "[tailnet]\nprefix4 = \"10.77.0.1/16\"\n", wantErr: "did you mean 10.77.0.0/16"},
		{name: "v6 prefix4", toml: "[tailnet]\nprefix4 = \"fd00::/64\"\n", wantErr: "not IPv4"},
		{name: "tiny prefix", toml: "[tailnet]\nprefix4 = \"10.0.0.0/30\"\n", wantErr: "too small"},
		{name: "url scheme", toml: "[server]\nurl = \"ftp://x\"\n", wantErr: `server.url: "ftp://x": scheme must be http or https`},
		{name: "url without scheme", toml: "[server]\nurl = \"192.168.1.2:8080\"\n", wantErr: `server.url: "192.168.1.2:8080" has no scheme: add http:// or https://`},
		{name: "url name without scheme", toml: "[server]\nurl = \"gw.example.net:8080\"\n", wantErr: `server.url: "gw.example.net:8080" has no scheme: add http:// or https://`},
		{name: "url empty", toml: "[server]\nurl = \"\"\n", wantErr: "server.url: must not be empty"},
		{name: "url path", toml: "[server]\nurl = \"http://x/y\"\n", wantErr: "must not have a path"},
		{name: "bad listen", toml: "[server]\nlisten = \"8080\"\n", wantErr: "server.listen"},
		{name: "bad relay listen", toml: "[relay]\nlisten = \"host:1\"\n", wantErr: "relay.listen"},
		{name: "relay off ignores relay listen", toml: "[relay]\nenabled = false\nlisten = \"x\"\n"},
		{name: "acme http", toml: "[relay]\nacme_directory = \"http://x\"\n", wantErr: "relay.acme_directory"},
		{name: "bad gateway route", toml: "[gateway]\nroutes = [\"192.168.1.0\"]\n", wantErr: `gateway.routes: "192.168.1.0" is not a CIDR prefix such as 192.168.1.0/24`},
		{name: "gateway route host bits", toml: "[gateway]\nroutes = [\"10.9.0.0/16\", \"192.168.1.1/24\"]\n", wantErr: `gateway.routes: "192.168.1.1/24" has host bits set; did you mean 192.168.1.0/24?`},
		{name: "gateway route v6 host bits", toml: "[gateway]\nroutes = [\"fd00:1::1/64\"]\n", wantErr: "did you mean fd00:1::/64?"},
		{name: "gateway route link-local", toml: "[gateway]\nroutes = [\"169.254.0.0/16\"]\n", wantErr: `gateway.routes: "169.254.0.0/16" is link-local, which no router forwards; did you mean the LAN's own prefix`},
		{name: "gateway route inside link-local", toml: "[gateway]\nroutes = [\"169.254.7.0/24\"]\n", wantErr: "is link-local"},
		{name: "gateway route v6 link-local", toml: "[gateway]\nroutes = [\"fe80::/64\"]\n", wantErr: `gateway.routes: "fe80::/64" is link-local`},
		{name: "gateway routes", toml: "[gateway]\nroutes = [\"192.168.1.0/24\", \"fd00:1::/64\", \"10.0.0.0/8\"]\n"},
		{name: "bad firewall", toml: "[gateway]\nfirewall = \"pf\"\n", wantErr: "gateway.firewall"},
		{name: "expiry days", toml: "[tailnet]\nnode_key_expiry = \"180d\"\n", check: func(t *testing.T, c Config) {
			if d, _ := c.NodeKeyExpiry(); d != 180*24*time.Hour {
				t.Errorf("expiry = %v", d)
			}
		}},
		{name: "bad expiry", toml: "[tailnet]\nnode_key_expiry = \"soon\"\n", wantErr: "tailnet.node_key_expiry"},
		{name: "tiny expiry", toml: "[tailnet]\nnode_key_expiry = \"1s\"\n", wantErr: "at least a minute"},
		{name: "empty state dir", toml: "state_dir = \"\"\n", wantErr: "state_dir"},
		{name: "ddns", toml: "[ddns]\nprovider = \"rfc2136\"\nname = \"home.example.net\"\n"},
		{name: "ddns zone apex", toml: "[ddns]\nprovider = \"cloudflare\"\nname = \"example.net\"\nzone = \"example.net\"\n"},
		{name: "ddns unknown provider", toml: "[ddns]\nprovider = \"godaddy\"\nname = \"home.example.net\"\n", wantErr: `ddns.provider: "godaddy" is not one of alidns, dnspod, cloudflare, rfc2136`},
		{name: "ddns name without provider", toml: "[ddns]\nname = \"home.example.net\"\n", wantErr: "ddns.provider: must be set"},
		{name: "ddns name not a name", toml: "[ddns]\nprovider = \"alidns\"\nname = \"home\"\n", wantErr: "ddns.name"},
		{name: "ddns name an address", toml: "[ddns]\nprovider = \"alidns\"\nname = \"192.0.2.1\"\n", wantErr: "ddns.name"},
		{name: "ddns name outside zone", toml: "[ddns]\nprovider = \"alidns\"\nname = \"home.example.net\"\nzone = \"example.org\"\n", wantErr: `ddns.name: "home.example.net" is not inside ddns.zone "example.org"`},
		{name: "ddns zone suffix trap", toml: "[ddns]\nprovider = \"alidns\"\nname = \"home.notexample.net\"\nzone = \"example.net\"\n", wantErr: "is not inside ddns.zone"},
		{name: "ddns nothing to publish", toml: "[ddns]\nprovider = \"alidns\"\nname = \"home.example.net\"\nipv4 = false\nipv6 = false\n", wantErr: "nothing to publish"},
		{name: "gateway name", toml: "[gateway]\nname = \"my home\"\n", wantErr: `gateway.name: "my home" is not a host name`},
		{name: "join", toml: "[server]\nurl = \"ftp://ignored\"\n[gateway]\nenabled = true\ncontrol_url = \"https://vps.example.net\"\nauth_key_file = \"/etc/homenet/key\"\n", check: func(t *testing.T, c Config) {
			if !c.Joins() || c.Gateway.AuthKeyFile != "/etc/homenet/key" {
				t.Errorf("joins %v, key file %q", c.Joins(), c.Gateway.AuthKeyFile)
			}
		}},
		{name: "join scheme", toml: "[gateway]\nenabled = true\ncontrol_url = \"vps.example.net\"\n", wantErr: `gateway.control_url: "vps.example.net" has no scheme: add http:// or https://`},
		{name: "join scheme with port", toml: "[gateway]\nenabled = true\ncontrol_url = \"203.0.113.5:443\"\n", wantErr: `gateway.control_url: "203.0.113.5:443" has no scheme: add http:// or https://`},
		{name: "join path", toml: "[gateway]\nenabled = true\ncontrol_url = \"https://vps.example.net/x\"\n", wantErr: "gateway.control_url: \"https://vps.example.net/x\": must not have a path"},
		{name: "join gateway off", toml: "[gateway]\ncontrol_url = \"https://vps.example.net\"\n", wantErr: "gateway.enabled is false"},
		{name: "join relative key", toml: "[gateway]\nenabled = true\ncontrol_url = \"https://vps.example.net\"\nauth_key_file = \"key\"\n", wantErr: "gateway.auth_key_file: \"key\" is not an absolute path"},
		{name: "join bad route", toml: "[gateway]\nenabled = true\ncontrol_url = \"https://vps.example.net\"\nroutes = [\"x\"]\n", wantErr: "gateway.routes"},
		{name: "key file without join", toml: "[gateway]\nauth_key_file = \"/k\"\n", wantErr: "only used with gateway.control_url"},
		{name: "dns defaults", toml: "", check: func(t *testing.T, c Config) {
			if !c.DNS.MagicDNS || c.DNS.BaseDomain != "homenet.internal" {
				t.Errorf("dns = %+v, want MagicDNS on under homenet.internal", c.DNS)
			}
		}},
		{name: "dns all keys", toml: "[dns]\nmagic_dns = false\nbase_domain = \"ts.home.arpa\"\nnameservers = [\"9.9.9.9\", \"2620:fe::fe\"]\nlan_domains = [\"lan\", \"fritz.box\"]\nlan_resolver = \"192.168.1.1\"\n"},
		{name: "dns base domain one label", toml: "[dns]\nbase_domain = \"home\"\n", wantErr: `dns.base_domain: "home" is not a DNS name of two or more labels`},
		{name: "dns base domain public suffix", toml: "[dns]\nbase_domain = \"co.uk\"\n", wantErr: `dns.base_domain: "co.uk" is a public suffix`},
		{name: "dns base domain holds the server", toml: "[server]\nurl = \"https://home.example.net:8443\"\n[dns]\nbase_domain = \"example.net\"\n", wantErr: `dns.base_domain: "example.net" contains server.url "home.example.net"`},
		{name: "dns base domain holds the ddns name", toml: "[ddns]\nprovider = \"alidns\"\nname = \"home.example.net\"\n[dns]\nbase_domain = \"home.example.net\"\n", wantErr: "contains ddns.name"},
		{name: "dns bad nameserver", toml: "[dns]\nnameservers = [\"dns.google\"]\n", wantErr: `dns.nameservers: "dns.google" is not an IP address`},
		{name: "dns bad lan domain", toml: "[dns]\nlan_domains = [\"my lan\"]\n", wantErr: `dns.lan_domains: "my lan" is not a domain`},
		{name: "dns lan domain overlaps", toml: "[dns]\nlan_domains = [\"internal\"]\n", wantErr: "overlaps dns.base_domain"},
		{name: "dns bad lan resolver", toml: "[dns]\nlan_resolver = \"router\"\n", wantErr: `dns.lan_resolver: "router" is not an IP address`},
		{name: "ddns ttl", toml: "[ddns]\nprovider = \"alidns\"\nname = \"home.example.net\"\nttl = -1\n", wantErr: "ddns.ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.toml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "homenet.toml")
	os.WriteFile(path, []byte("state_dir = \"state\"\n[tailnet]\nprefix4 = \"nope\"\n"), 0o600)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want it to name %s", err, path)
	}
	os.WriteFile(path, []byte("state_dir = \"state\"\n"), 0o600)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "state"); c.StateDir != want {
		t.Errorf("relative state_dir = %q, want %q", c.StateDir, want)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("missing file loaded")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("[server]\nurl = \"http://1.2.3.4:8080\"\n"))
	f.Add([]byte("[tailnet]\nprefix4 = \"10.77.0.0/16\"\n"))
	f.Add([]byte("[relay]\nenabled = false\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever parses must be usable.
		if _, err := c.Prefix4(); err != nil {
			t.Fatalf("valid config has bad prefix: %v", err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config fails validation: %v", err)
		}
	})
}
