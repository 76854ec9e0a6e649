package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/p1logger/p1logger/ingest/spool"
)

// Bounds of the sized write buffer (README: "How long an outage it holds").
const (
	// minDiskBytes is the spool's smallest derived size: what a few meters
	// need for weeks costs nothing on any disk.
	minDiskBytes = spool.DefaultMaxBytes
	// diskShare is the part of the free disk (plus what the spool already
	// holds) that a derived size may take: the rest stays for InfluxDB,
	// logs and the system.
	diskShare = 2
	// minMemBytes and maxMemBytes bound the memory buffer (and the spool's
	// fallback to memory while its disk fails); memShare is the part of the
	// machine's (or container's) memory it may take, so that a 1 GiB
	// single-board computer gives it 128 MiB.
	minMemBytes = 64 << 20
	maxMemBytes = 1 << 30
	memShare    = 8
	// unknownMemBytes is assumed where the memory cannot be read.
	unknownMemBytes = 2 << 30
)

// bufferPlan is the size of the write buffer for an outage of Age, and how
// long an outage that size holds by the estimate.
type bufferPlan struct {
	Age      time.Duration // P1_SPOOL_MAX_AGE
	Want     int64         // bytes Age needs by the estimate
	Disk     int64         // the spool's bound (P1_SPOOL_DIR set)
	DiskAge  time.Duration // what Disk holds
	DiskCap  int64         // the ceiling Disk was held to; 0 when P1_SPOOL_MAX_BYTES was given
	Mem      int64         // the memory buffer's bound
	MemAge   time.Duration
	Explicit bool    // Disk is P1_SPOOL_MAX_BYTES
	Rate     float64 // bytes per second by the estimate, until measured
}

// planBuffer sizes the write buffer for gateways written every cycle to
// hold an outage of age: the spool on disk takes what the estimate says,
// at least minDiskBytes and at most 1/diskShare of diskRoom (free bytes
// plus those the spool holds; 0 when unknown, then only the estimate
// counts), unless explicit (P1_SPOOL_MAX_BYTES) is set, which is taken as
// it is; memory takes the estimate within [minMemBytes,
// min(memTotal/memShare, maxMemBytes)].
func planBuffer(gateways int, cycle, age time.Duration, explicit, diskRoom, memTotal int64) bufferPlan {
	p := bufferPlan{Age: age, Want: spool.EstimateBytes(gateways, cycle, age)}
	if cycle > 0 {
		p.Rate = float64(spool.EstimateBytes(gateways, cycle, cycle)) / cycle.Seconds()
	}
	if explicit > 0 {
		p.Disk, p.Explicit = explicit, true
	} else {
		p.Disk = max(p.Want, minDiskBytes)
		if diskRoom > 0 {
			p.DiskCap = max(diskRoom/diskShare, spool.MinMaxBytes)
			p.Disk = min(p.Disk, p.DiskCap)
		}
	}
	if memTotal <= 0 {
		memTotal = unknownMemBytes
	}
	memCap := max(min(memTotal/memShare, maxMemBytes), minMemBytes)
	p.Mem = min(max(p.Want, minMemBytes), memCap)
	p.DiskAge = spool.EstimateAge(gateways, cycle, p.Disk)
	p.MemAge = spool.EstimateAge(gateways, cycle, p.Mem)
	return p
}

// memoryLimit returns the memory this process may use: the cgroup's
// limit (a container's --memory) when one is set, else the machine's
// MemTotal; 0 when neither can be read (not Linux).
func memoryLimit() int64 {
	total := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					total = kb << 10
				}
			}
		}
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}
