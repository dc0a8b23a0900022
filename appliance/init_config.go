package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// decide works out the config init wants: flags first, then the existing
// config, then what was detected (confirmed by the user when asked).
func (in *initRun) decide(existing *Config, n NetInfo) (Config, string, error) {
	o := &in.o
	var c Config
	if existing != nil {
		c = *existing
	} else {
		c = DefaultConfig()
		c.StateDir = in.plat.StateDir
		c.Server.URL = "" // DefaultConfig's is a guess; decide below
		c.Gateway.Enabled = true
	}
	if o.StateDir != "" {
		c.StateDir = o.StateDir
	}

	urlWhy := ""
	switch {
	case o.Join != "":
		in.applyJoin(&c)
		urlWhy = "joined with --join"
	case o.ServerURL != "":
		c.Server.URL = o.ServerURL
		urlWhy = "given with --server-url"
	case existing != nil && existing.Server.URL != "":
		urlWhy = "from the existing config"
	default:
		var guess string
		guess, urlWhy = chooseServerURL(n, portOf(c.Server.Listen))
		if u := httpsForWAN(guess, n, c, in.plat); u != "" {
			guess, urlWhy = u, urlWhy+", over https with a certificate for the address (HTTP-01 on port 80)"
		}
		c.Server.URL = guess
		if o.Ask != nil {
			for {
				in.logf("Server URL: %s (%s)", guess, urlWhy)
				ans, err := o.Ask("Server URL phones will use", guess)
				if err != nil {
					return c, "", err
				}
				if ans == "" || ans == guess {
					break
				}
				if err := validateServerURL(ans); err != nil {
					in.logf("  %v", err)
					continue
				}
				c.Server.URL, urlWhy = ans, "entered by you"
				break
			}
		}
	}

	if o.ACMEDirectory != "" {
		c.Relay.ACMEDirectory = o.ACMEDirectory
	}
	if o.ACMEEmail != "" {
		c.Relay.ACMEEmail = o.ACMEEmail
	}
	if why := in.applyDDNS(&c); why != "" {
		urlWhy = why
	}
	if !c.Joins() && httpsListeners(&c, in.plat) {
		in.logf("Server URL %s is https: control listens on %s (plain Noise) and the relay on %s (TLS, serving control too)", c.Server.URL, c.Server.Listen, c.Relay.Listen)
	}

	switch {
	case o.NoGateway:
		c.Gateway.Enabled = false
		c.Gateway.Routes = nil
	case o.LAN != nil:
		c.Gateway.Enabled = true
		c.Gateway.Routes = prefixStrings(o.LAN)
	case existing != nil:
		// keep
	case o.Join == "" && o.Ask == nil && isServerOnly(n):
		c.Gateway.Enabled = false
		in.logf("No LAN to serve and a public address: a server for phones and home gateways, with no gateway of its own")
	case in.plat.Kind == PlatformSynology:
		// DSM 7 runs the package unprivileged: the subnet router needs
		// the package's boot task first.
		c.Gateway.Enabled = false
		in.warn("synology-gateway", "The subnet router is off: on DSM 7 it needs the kernel TUN and capabilities that the homenet package's boot task provides.",
			"Add the boot task (see /var/packages/homenet/target/bin/homenet-boot-task), then run homenet init --lan <your LAN, such as 192.168.1.0/24>.")
	default:
		routes := n.LAN.Routes
		if o.Ask != nil {
			for _, w := range n.LAN.Why {
				in.logf("  %s", w)
			}
			def := joinPrefixes(routes)
			if def == "" {
				def = "none"
			}
			for {
				ans, err := o.Ask("LAN prefixes phones may reach, comma-separated, or \"none\"", def)
				if err != nil {
					return c, "", err
				}
				if ans == "" {
					ans = def
				}
				if ans == "none" {
					c.Gateway.Enabled = false
					routes = nil
					break
				}
				ps, err := ParsePrefixList(ans)
				if err != nil {
					in.logf("  %v", err)
					continue
				}
				routes = ps
				break
			}
		}
		c.Gateway.Routes = prefixStrings(routes)
		if c.Gateway.Enabled && len(routes) == 0 {
			in.warn("no-lan", "No LAN prefix was found to serve: the gateway will look again each time it starts.",
				"Name the LAN with --lan, such as --lan 192.168.1.0/24.")
		}
	}
	if c.Gateway.Routes == nil {
		c.Gateway.Routes = []string{}
	}
	if err := c.Validate(); err != nil {
		return c, "", fmt.Errorf("the config init would write is invalid: %w", err)
	}
	return c, urlWhy, nil
}

// isServerOnly reports whether n looks like a VPS: no LAN to serve, and a
// public IPv4 address on the WAN or seen by STUN. Such a host serves control
// and relay for phones and for home gateways that join it.
func isServerOnly(n NetInfo) bool {
	return len(n.LAN.Routes) == 0 && (addrClass(n.WANIPv4()) == addrPublic || addrClass(n.Public) == addrPublic)
}

// CheckServerURL checks a server URL as the server.url key requires: http
// or https, a host, no path.
func CheckServerURL(s string) error { return validateServerURL(s) }

// readExistingConfig reads the config at cfgPath under root: nil when there
// is none; the raw bytes and the parse error when it is invalid.
func readExistingConfig(root, cfgPath string) (*Config, []byte, error) {
	raw, err := os.ReadFile(filepath.Join(root, cfgPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", cfgPath, err)
	}
	c, err := ParseConfig(raw)
	if err != nil {
		return nil, raw, fmt.Errorf("config %s: %w", cfgPath, err)
	}
	// Without server.url, ParseConfig guesses one, as serve would; init
	// picks one properly instead (the packages ship it commented out).
	var keys struct {
		Server struct {
			URL *string `toml:"url"`
		} `toml:"server"`
	}
	if _, err := toml.Decode(string(raw), &keys); err == nil && keys.Server.URL == nil {
		c.Server.URL = ""
	}
	if c.Gateway.Routes == nil {
		c.Gateway.Routes = []string{}
	}
	return &c, raw, nil
}

// RenderConfig returns c as the TOML file init writes.
func RenderConfig(c Config) ([]byte, error) {
	// Show the keys, empty.
	for _, l := range []*[]string{&c.Gateway.Routes, &c.DNS.Nameservers, &c.DNS.LANDomains} {
		if *l == nil {
			*l = []string{}
		}
	}
	var b bytes.Buffer
	b.WriteString(configHeader)
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	var v any = c
	if c.Joins() {
		// Only these sections count for a host that joins a server
		// elsewhere; the others would mislead.
		b.WriteString(joinedHeader)
		type tailnet struct {
			Prefix4 string `toml:"prefix4"`
		}
		v = struct {
			StateDir string        `toml:"state_dir"`
			Tailnet  tailnet       `toml:"tailnet"`
			Gateway  GatewayConfig `toml:"gateway"`
		}{c.StateDir, tailnet{c.Tailnet.Prefix4}, c.Gateway}
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// joinedHeader follows configHeader in the config of a host that joins a
// control server elsewhere.
const joinedHeader = `# This host runs only the gateway agent, which joins gateway.control_url.
# tailnet.prefix4 must match that server's (homenet's default: 100.86.0.0/16).

`

// writeConfig writes desired unless the existing config says the same. An
// existing config that differs (because flags asked for something else, or
// --force re-detected everything) is replaced, keeping a backup; an invalid
// one is replaced only with --force. It returns the config in effect and
// whether the file changed.
func (in *initRun) writeConfig(cfgPath string, desired Config, existing *Config, existingRaw []byte, existingErr error) (Config, bool, error) {
	st := Step{What: "config", Target: cfgPath}
	b, err := RenderConfig(desired)
	if err != nil {
		return desired, false, err
	}
	switch {
	case existing == nil && existingRaw == nil && existingErr == nil:
		st.Result = ResultCreated
	case existing != nil && (len(configDiff(*existing, desired)) == 0 || bytes.Equal(existingRaw, b)):
		st.Result = ResultUnchanged
		in.step(st)
		return *existing, false, nil
	case existing == nil && !in.o.Force:
		return desired, false, fmt.Errorf("%w; fix it, or run homenet init again with --force to replace it (the current file is kept as a backup)", existingErr)
	default:
		backup := fmt.Sprintf("%s.bak-%s", cfgPath, in.o.Now().UTC().Format("20060102-150405"))
		if err := writeFileAtomic(filepath.Join(in.root, backup), existingRaw, 0o644); err != nil {
			return desired, false, fmt.Errorf("backing up %s: %w", cfgPath, err)
		}
		in.step(Step{What: "config backup", Target: backup, Result: ResultCreated, Detail: "the previous " + cfgPath})
		st.Result = ResultUpdated
		if existing != nil {
			st.Detail = strings.Join(configDiff(*existing, desired), "; ")
		} else {
			st.Detail = "replaced the invalid file"
		}
	}
	if err := writeFileAtomic(filepath.Join(in.root, cfgPath), b, 0o644); err != nil {
		return desired, false, fmt.Errorf("writing the config: %w", err)
	}
	in.step(st)
	return desired, true, nil
}

// configDiff lists the keys where have and want differ, as in
// `server.url: "http://a:8080" → "http://b:8080"`.
func configDiff(have, want Config) []string {
	h, w := flattenConfig(have), flattenConfig(want)
	var keys []string
	for k := range w {
		if h[k] != w[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s: %s → %s", k, h[k], w[k]))
	}
	return out
}

// flattenConfig maps every key of c ("server.url") to its value, quoted.
func flattenConfig(c Config) map[string]string {
	m := map[string]string{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if prefix != "" {
				tag = prefix + "." + tag
			}
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Struct:
				walk(tag, f)
			case reflect.String:
				m[tag] = fmt.Sprintf("%q", f.String())
			case reflect.Slice:
				var parts []string
				for j := range f.Len() {
					parts = append(parts, fmt.Sprintf("%q", f.Index(j).Interface()))
				}
				m[tag] = "[" + strings.Join(parts, ", ") + "]"
			default:
				m[tag] = fmt.Sprint(f.Interface())
			}
		}
	}
	walk("", reflect.ValueOf(c))
	return m
}

// ParsePrefixList parses comma-separated CIDR prefixes, rejecting host
// bits.
func ParsePrefixList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix such as 192.168.1.0/24", f)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%s has host bits set; did you mean %s?", p, p.Masked())
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no prefix given")
	}
	return out, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string { return strings.Join(prefixStrings(ps), ",") }
