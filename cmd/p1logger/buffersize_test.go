package main

import (
	"testing"
	"time"
)

func TestPlanBuffer(t *testing.T) {
	const (
		MiB = int64(1) << 20
		GiB = int64(1) << 30
	)
	day := 24 * time.Hour
	tests := []struct {
		name              string
		gateways          int
		cycle             time.Duration
		explicit, room    int64
		mem               int64
		wantDisk, wantMem int64
		diskHolds         bool // DiskAge >= 24 h
		memHolds          bool
	}{
		// One meter needs 2.3 MB a day: the floors apply, both hold weeks.
		{"one meter", 1, 5 * time.Second, 0, 100 * GiB, 8 * GiB, 128 * MiB, 64 * MiB, true, true},
		// 1,000 meters: 1.1 GB a day on disk; memory capped at 1 GiB holds 23 h.
		{"1,000 meters", 1000, 5 * time.Second, 0, 100 * GiB, 16 * GiB, 17280 * 64068, GiB, true, false},
		// 10,000 meters: 11 GB a day on disk; memory holds about 2 h 20 min.
		{"10,000 meters", 10000, 5 * time.Second, 0, 100 * GiB, 16 * GiB, 17280 * 640068, GiB, true, false},
		// A small disk: half its free space, and a warning.
		{"small disk", 10000, 5 * time.Second, 0, 2 * GiB, 16 * GiB, GiB, GiB, false, false},
		// P1_SPOOL_MAX_BYTES is taken as it is, even where it is larger than the disk.
		{"explicit", 10000, 5 * time.Second, 20 * GiB, 2 * GiB, 16 * GiB, 20 * GiB, GiB, true, false},
		// A 1 GiB single-board computer: memory capped at 128 MiB.
		{"small box", 1000, 5 * time.Second, 0, 0, GiB, 17280 * 64068, 128 * MiB, true, false},
		// Memory unknown: 2 GiB assumed, 256 MiB.
		{"memory unknown", 1000, 5 * time.Second, 0, 0, 0, 17280 * 64068, 256 * MiB, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planBuffer(tc.gateways, tc.cycle, day, tc.explicit, tc.room, tc.mem)
			if p.Disk != tc.wantDisk || p.Mem != tc.wantMem {
				t.Errorf("disk %d mem %d, want %d and %d", p.Disk, p.Mem, tc.wantDisk, tc.wantMem)
			}
			if got := p.DiskAge >= day; got != tc.diskHolds {
				t.Errorf("disk holds %v; want a day: %v", p.DiskAge, tc.diskHolds)
			}
			if got := p.MemAge >= day; got != tc.memHolds {
				t.Errorf("memory holds %v; want a day: %v", p.MemAge, tc.memHolds)
			}
		})
	}
}
