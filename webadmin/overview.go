package webadmin

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"homenet/control"
)

// The parts of control.Status.Extra the overview shows. The appliance
// fills Extra with its parts' own status types; this package cannot import
// the appliance (which imports it), so it reads them back through JSON into
// these minimal copies, keeping only the fields shown. Field names follow
// the JSON tags of appliance.Reachability, ddns.Status, relay.CertStatus,
// portmap.Status, subnet.Status and appliance.LAN; a key that is missing
// or does not decode is simply not shown.

// reachability is appliance.Reachability.
type reachability struct {
	Case      string     `json:"case"`
	WAN       string     `json:"wan"`
	IPv4      netip.Addr `json:"public_ipv4"`
	WANIPv4   netip.Addr `json:"wan_ipv4"`
	IPv6      netip.Addr `json:"global_ipv6"`
	IPv6Iface string     `json:"ipv6_interface"`
	Advice    string     `json:"advice"`
}

// ddnsStatus is ddns.Status.
type ddnsStatus struct {
	Provider    string    `json:"provider"`
	Name        string    `json:"name"`
	Published   []string  `json:"published"`
	LastUpdate  time.Time `json:"last_update"`
	LastError   string    `json:"last_error"`
	LastErrorAt time.Time `json:"last_error_at"`
	NextRetry   time.Time `json:"next_retry"`
	Updates     int       `json:"updates"`
	Failures    int       `json:"failures"`
	Updating    bool      `json:"updating"`
}

// certStatus is relay.CertStatus.
type certStatus struct {
	Mode        string    `json:"mode"`
	Names       []string  `json:"names"`
	Issuer      string    `json:"issuer"`
	NotAfter    time.Time `json:"not_after"`
	LastError   string    `json:"last_error"`
	LastErrorAt time.Time `json:"last_error_at"`
	NextRetry   time.Time `json:"next_retry"`
	Obtaining   bool      `json:"obtaining"`
}

// portmapStatus is portmap.Status.
type portmapStatus struct {
	Protocol     string        `json:"protocol"`
	Router       string        `json:"router"`
	ExternalIPv4 netip.Addr    `json:"external_ipv4"`
	Mappings     []portMapping `json:"mappings"`
	LastError    string        `json:"last_error"`
}

// portMapping is portmap.MappingStatus.
type portMapping struct {
	Proto    string    `json:"proto"`
	Internal uint16    `json:"internal"`
	External uint16    `json:"external"`
	Expires  time.Time `json:"expires"`
	Err      string    `json:"error"`
}

// gatewayStatus is subnet.Status.
type gatewayStatus struct {
	State      string         `json:"state"`
	ControlURL string         `json:"control_url"`
	Connected  bool           `json:"connected"`
	Tun        string         `json:"tun"`
	Addresses  []netip.Prefix `json:"addresses"`
	Advertised []netip.Prefix `json:"advertised_routes"`
	Approved   []netip.Prefix `json:"approved_routes"`
	ExitNode   bool           `json:"exit_node"`
	Firewall   string         `json:"firewall"`
	WAN        string         `json:"wan"`
	Repairs    int            `json:"repairs"`
	LastError  string         `json:"last_error"`
}

// lanStatus is appliance.LAN: what LAN detection found, and why.
type lanStatus struct {
	Routes []netip.Prefix `json:"routes"`
	WAN    string         `json:"wan"`
	Why    []string       `json:"why"`
}

// lanDNSStatus is appliance.LANDNS: the home LAN's names phones resolve
// on the road, or why they don't.
type lanDNSStatus struct {
	Resolver netip.Addr `json:"resolver"`
	Domains  []string   `json:"domains"`
	Why      string     `json:"why"`
}

// warning is something the owner should act on.
type warning struct {
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// overview is the data of the overview page.
type overview struct {
	Status       control.Status
	ServerURL    string
	Reachability *reachability
	DDNS         *ddnsStatus
	Certificate  *certStatus
	Portmap      *portmapStatus
	Gateway      *gatewayStatus
	LAN          *lanStatus
	LANDNS       *lanDNSStatus
	// Unapproved are the routes the gateway advertises that control has
	// not approved.
	Unapproved []netip.Prefix
	Warnings   []warning
}

// decodeExtra reads Extra[key] into a new T, or returns nil if the key is
// missing or not what T expects.
func decodeExtra[T any](extra map[string]any, key string) *T {
	v, ok := extra[key]
	if !ok || v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	t := new(T)
	if json.Unmarshal(b, t) != nil {
		return nil
	}
	return t
}

// newOverview reads st and its Extra, and derives the warnings.
func newOverview(st control.Status, serverURL string, pending int, now time.Time) overview {
	o := overview{
		Status:       st,
		ServerURL:    serverURL,
		Reachability: decodeExtra[reachability](st.Extra, "reachability"),
		DDNS:         decodeExtra[ddnsStatus](st.Extra, "ddns"),
		Certificate:  decodeExtra[certStatus](st.Extra, "certificate"),
		Portmap:      decodeExtra[portmapStatus](st.Extra, "upnp"),
		Gateway:      decodeExtra[gatewayStatus](st.Extra, "gateway"),
		LAN:          decodeExtra[lanStatus](st.Extra, "gateway_lan"),
		LANDNS:       decodeExtra[lanDNSStatus](st.Extra, "lan_dns"),
	}
	if o.Reachability != nil && o.Reachability.Case == "" {
		o.Reachability = nil
	}
	if o.DDNS != nil && o.DDNS.Name == "" {
		o.DDNS = nil
	}
	if o.Certificate != nil && o.Certificate.Mode == "" {
		o.Certificate = nil
	}
	if gw := o.Gateway; gw != nil {
		for _, p := range gw.Advertised {
			if !slices.Contains(gw.Approved, p) {
				o.Unapproved = append(o.Unapproved, p)
			}
		}
	}
	o.Warnings = warnings(o, pending, now)
	if ws := decodeExtra[[]warning](st.Extra, "warnings"); ws != nil {
		o.Warnings = append(o.Warnings, *ws...)
	}
	return o
}

// certWarnBefore is how long before its end a certificate is worth a
// warning: ACME renews at a third of the lifetime left, so a certificate
// this close to its end has failed to renew for weeks.
const certWarnBefore = 7 * 24 * time.Hour

// warnings lists what in o needs the owner, most urgent first.
func warnings(o overview, pending int, now time.Time) []warning {
	var ws []warning
	if pending > 0 {
		ws = append(ws, warning{
			Message: fmt.Sprintf("%d %s waiting for approval.", pending, plural(pending, "login is", "logins are")),
			Fix:     "Approve or deny them on the Pending page.",
		})
	}
	if r := o.Reachability; r != nil && r.Case == "none" {
		ws = append(ws, warning{Message: "Phones away from home cannot reach this gateway.", Fix: r.Advice})
	}
	if c := o.Certificate; c != nil {
		switch {
		case !c.NotAfter.IsZero() && !now.Before(c.NotAfter):
			ws = append(ws, warning{Message: fmt.Sprintf("The relay's certificate expired %s.", relTime(now, c.NotAfter))})
		case !c.NotAfter.IsZero() && c.NotAfter.Sub(now) < certWarnBefore:
			ws = append(ws, warning{Message: fmt.Sprintf("The relay's certificate expires %s.", relTime(now, c.NotAfter))})
		}
		if c.LastError != "" {
			ws = append(ws, warning{Message: "Getting the relay's certificate failed: " + c.LastError})
		}
	}
	if d := o.DDNS; d != nil && d.LastError != "" {
		ws = append(ws, warning{Message: fmt.Sprintf("Updating %s at %s failed: %s", d.Name, d.Provider, d.LastError)})
	}
	if gw := o.Gateway; gw != nil {
		if gw.State != "" && gw.State != "Running" {
			ws = append(ws, warning{Message: fmt.Sprintf("The gateway agent is %s, not running.", gw.State)})
		}
		if len(o.Unapproved) > 0 {
			ws = append(ws, warning{
				Message: "The gateway advertises routes that are not approved: " + joinList(o.Unapproved) + ".",
				Fix:     "Approve them on the Routes page.",
			})
		}
		if gw.LastError != "" {
			ws = append(ws, warning{Message: "Gateway: " + gw.LastError})
		}
	}
	if pm := o.Portmap; pm != nil && pm.LastError != "" {
		ws = append(ws, warning{Message: "Port mapping on the home router failed: " + pm.LastError})
	}
	return ws
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// joinList joins the elements of xs with commas, or returns "none".
func joinList[T fmt.Stringer](xs []T) string {
	if len(xs) == 0 {
		return "none"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ", ")
}
