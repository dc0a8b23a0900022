//go:build linux

package subnet

import (
	"fmt"

	"github.com/tailscale/wireguard-go/tun"
	"github.com/vishvananda/netlink"
)

// smallBatchTUN is the kernel TUN with a smaller batch size. tstun's
// Wrapper allocates BatchSize() buffers of 64 KiB for its reads from the
// TUN (8 MiB at wireguard-go's 128) and keeps them for good; each read
// splits one TSO super-segment into at most that many packets, so the
// TUN's gso_max_segs must be no larger (limitTUNBatch sets it), or the
// rest of the segment is dropped. It stays a tun.GRODevice, so that
// tstun's GRO knobs and probe still reach the device.
type smallBatchTUN struct {
	tun.GRODevice
	batch int
}

func (d smallBatchTUN) BatchSize() int { return min(d.batch, d.GRODevice.BatchSize()) }

// limitTUNBatch returns dev reading at most batch packets at a time, with
// the kernel's super-segments on the TUN named name cut to batch segments.
// It returns dev unchanged when batch is 0, no smaller than dev's own, or
// dev is not wireguard-go's Linux TUN; and when the kernel refuses the
// segment limit, with that error.
func limitTUNBatch(dev tun.Device, name string, batch int) (tun.Device, error) {
	gro, ok := dev.(tun.GRODevice)
	if !ok || batch <= 0 || batch >= dev.BatchSize() {
		return dev, nil
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return dev, fmt.Errorf("TUN %s: %w", name, err)
	}
	if err := netlink.LinkSetGSOMaxSegs(link, batch); err != nil {
		return dev, fmt.Errorf("TUN %s: setting gso_max_segs %d: %w", name, batch, err)
	}
	return smallBatchTUN{GRODevice: gro, batch: batch}, nil
}
