//go:build linux

package subnet

import (
	"os"
	"runtime"
	"testing"

	"github.com/tailscale/wireguard-go/tun"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestLimitTUNBatch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a TUN in a network namespace of its own")
	}
	tests := []struct {
		name      string
		batch     int
		wantBatch int
		wantSegs  int // 0: left as the kernel made it
	}{
		{"16", 16, 16, 16},
		{"zero leaves it", 0, 128, 0},
		{"larger leaves it", 1000, 128, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				// This thread moves to a namespace of its own and is
				// never unlocked, so Go ends it with the goroutine.
				runtime.LockOSThread()
				if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
					t.Errorf("unshare: %v", err)
					return
				}
				dev, err := tun.CreateTUN("hntest0", 1280)
				if err != nil {
					t.Errorf("CreateTUN: %v", err)
					return
				}
				defer dev.Close()
				before, _ := netlink.LinkByName("hntest0")
				got, err := limitTUNBatch(dev, "hntest0", tt.batch)
				if err != nil {
					t.Errorf("limitTUNBatch(%d): %v", tt.batch, err)
					return
				}
				if bs := got.BatchSize(); bs != tt.wantBatch {
					t.Errorf("BatchSize() = %d, want %d", bs, tt.wantBatch)
				}
				if _, ok := got.(tun.GRODevice); !ok {
					t.Errorf("%T is no tun.GRODevice: tstun's GRO knobs would not reach the TUN", got)
				}
				link, err := netlink.LinkByName("hntest0")
				if err != nil {
					t.Errorf("LinkByName: %v", err)
					return
				}
				want := tt.wantSegs
				if want == 0 {
					want = int(before.Attrs().GSOMaxSegs)
				}
				if segs := int(link.Attrs().GSOMaxSegs); segs != want {
					t.Errorf("gso_max_segs = %d, want %d", segs, want)
				}
			}()
			<-done
		})
	}
}
