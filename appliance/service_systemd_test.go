package appliance

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// TestFirewalldLive drives a real firewalld over a real D-Bus. It runs
// only when HOMENET_TEST_FIREWALLD=1, with firewalld owning its name on
// the bus DBUS_SYSTEM_BUS_ADDRESS names. To run it without touching the
// host's firewall, start dbus-daemon and firewalld in their own network and
// mount namespaces (with a scratch /etc/firewalld); docs/init.md shows how.
func TestFirewalldLive(t *testing.T) {
	if os.Getenv("HOMENET_TEST_FIREWALLD") != "1" {
		t.Skip("set HOMENET_TEST_FIREWALLD=1 to test against a running firewalld")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := DialSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if ok, err := bus.NameHasOwner(ctx, firewalldDest); err != nil || !ok {
		t.Fatalf("firewalld is not on the bus: %v", err)
	}
	results := func(steps []Step) string {
		var rs []string
		for _, s := range steps {
			rs = append(rs, s.Result)
		}
		return strings.Join(rs, " ")
	}
	zones := func() (string, string) {
		z, err := callString(ctx, bus, firewalldDest, firewalldPath, firewalldDest+".zone.getZoneOfInterface", tunName)
		if err != nil {
			t.Fatal(err)
		}
		p, err := callString(ctx, bus, firewalldDest, firewalldConfigPath, firewalldDest+".config.getZoneOfInterface", tunName)
		if err != nil {
			t.Fatal(err)
		}
		return z, p
	}

	// Start from the interface in another zone, as NetworkManager might
	// have put it, at runtime and permanently.
	if _, err := bus.Call(ctx, firewalldDest, firewalldPath, firewalldDest+".zone.changeZoneOfInterface", "public", tunName); err != nil {
		t.Fatal(err)
	}
	if err := firewalldConfigZone(ctx, bus, "public", "addInterface", tunName); err != nil {
		t.Fatal(err)
	}

	steps, err := firewalldTrust(ctx, bus, tunName)
	if err != nil || results(steps) != "done done" {
		t.Fatalf("trust: %v, %+v", err, steps)
	}
	if z, p := zones(); z != "trusted" || p != "trusted" {
		t.Errorf("zones %q (runtime), %q (permanent), want trusted", z, p)
	}
	if steps, err := firewalldTrust(ctx, bus, tunName); err != nil || results(steps) != "unchanged unchanged" {
		t.Errorf("second trust: %v, %+v", err, steps)
	}
	steps, err = firewalldUntrust(ctx, bus, tunName)
	if err != nil || results(steps) != "removed removed" {
		t.Fatalf("untrust: %v, %+v", err, steps)
	}
	if z, p := zones(); z != "" || p != "" {
		t.Errorf("zones %q (runtime), %q (permanent), want none", z, p)
	}
	if steps, err := firewalldUntrust(ctx, bus, tunName); err != nil || !slices.Equal([]string{results(steps)}, []string{"absent"}) {
		t.Errorf("second untrust: %v, %+v", err, steps)
	}
}

// TestNetworkManagerLive drives a real NetworkManager over a real D-Bus,
// with a dummy tailscale0 it manages. It runs only when
// HOMENET_TEST_NM=1; like TestFirewalldLive, run it in scratch
// namespaces.
func TestNetworkManagerLive(t *testing.T) {
	if os.Getenv("HOMENET_TEST_NM") != "1" {
		t.Skip("set HOMENET_TEST_NM=1 to test against a running NetworkManager")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := DialSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if ok, err := bus.NameHasOwner(ctx, nmDest); err != nil || !ok {
		t.Fatalf("NetworkManager is not on the bus: %v", err)
	}
	if err := nmReload(ctx, bus); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// Have NetworkManager manage the device, as it might on its own.
	dev, err := callString(ctx, bus, nmDest, nmPath, nmDest+".GetDeviceByIpIface", tunName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Call(ctx, nmDest, dev, propertiesSet, nmDest+".Device", "Managed", dbus.MakeVariant(true)); err != nil {
		t.Fatal(err)
	}
	managed := false
	for i := 0; i < 30 && !managed; i++ {
		body, err := bus.Call(ctx, nmDest, dev, propertiesGet, nmDest+".Device", "Managed")
		if err != nil {
			t.Fatal(err)
		}
		managed = body[0].(dbus.Variant).Value() == true
		time.Sleep(100 * time.Millisecond)
	}
	st, err := nmUnmanage(ctx, bus, tunName)
	switch {
	case err != nil:
		t.Fatalf("unmanage: %v", err)
	case managed && st.Result != ResultDone:
		t.Errorf("unmanage of a managed device: %+v", st)
	case !managed:
		// NetworkManager without udev (a container) keeps it unmanaged.
		t.Logf("NetworkManager would not manage %s; unmanage: %+v", tunName, st)
	}
	if st, err := nmUnmanage(ctx, bus, tunName); err != nil || st.Result != ResultUnchanged || st.Detail != "unmanaged" {
		t.Errorf("second unmanage: %v, %+v", err, st)
	}
	if st, err := nmUnmanage(ctx, bus, "nosuch0"); err != nil || st.Result != ResultUnchanged {
		t.Errorf("unmanage of a missing device: %v, %+v", err, st)
	}
}
