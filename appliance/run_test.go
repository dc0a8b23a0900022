package appliance

import "testing"

func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		ram  uint64
		want int64
	}{
		{64 * mib, 32 * mib},         // half: less than the floor
		{128 * mib, 64 * mib},        // the floor
		{256 * mib, 64 * mib},        // a quarter, the floor
		{512 * mib, 128 * mib},       // a quarter
		{1024 * mib, 256 * mib},      // a quarter
		{24 << 30, 6 << 30},          // a quarter on a server too
		{3_000_000_001, 750_000_000}, // not rounded
	} {
		if got := memoryLimit(tt.ram); got != tt.want {
			t.Errorf("memoryLimit(%d MiB) = %d MiB, want %d MiB", tt.ram/mib, got/mib, tt.want/mib)
		}
	}
}

func TestTotalRAM(t *testing.T) {
	ram, err := totalRAM()
	if err != nil {
		t.Skipf("no /proc/meminfo here: %v", err)
	}
	if ram < 16<<20 || ram > 1<<50 {
		t.Errorf("totalRAM = %d bytes, not a plausible RAM size", ram)
	}
}
