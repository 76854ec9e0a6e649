package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The state file keeps a meter's registers across restarts of the simulator,
// so that a meter restarted (the quick start's, after Ctrl-C) goes on from
// where it stopped instead of from its seed's history, which would make
// every register go backwards by what the last run counted. One line:
//
//	p1sim-registers 1 TAKEN_T1 TAKEN_T2 INJECTED_T1 INJECTED_T2 GAS WATER
//
// registers in Wh and litres. It is written after every render, by
// rename, so a crash leaves the last whole one; the time the simulator was
// stopped is not counted (the household was away).
const stateMagic = "p1sim-registers 1"

// loadState replaces the seeded registers by those of m.cfg.StateFile. A
// missing file is a first start and no error; an unreadable or damaged one
// is, naming the file.
func (m *Meter) loadState() error {
	b, err := os.ReadFile(m.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sim: meter state: %w", err)
	}
	var r [6]int64
	var magic1, magic2 string
	n, err := fmt.Sscanf(string(b), "%s %s %d %d %d %d %d %d\n", &magic1, &magic2, &r[0], &r[1], &r[2], &r[3], &r[4], &r[5])
	if err != nil || n != 8 || magic1+" "+magic2 != stateMagic {
		return fmt.Errorf("sim: meter state %s: not a p1sim state file (want %q and six registers); delete it to start from the seed", m.cfg.StateFile, stateMagic)
	}
	for i, v := range r {
		if v < 0 {
			return fmt.Errorf("sim: meter state %s: register %d is negative (%d)", m.cfg.StateFile, i+1, v)
		}
	}
	m.taken[0], m.taken[1], m.injected[0], m.injected[1], m.gasL, m.waterL = r[0], r[1], r[2], r[3], r[4], r[5]
	return nil
}

// saveState writes the registers to m.cfg.StateFile (see stateMagic).
func (m *Meter) saveState() error {
	tmp := m.cfg.StateFile + ".tmp"
	line := fmt.Sprintf("%s %d %d %d %d %d %d\n", stateMagic, m.taken[0], m.taken[1], m.injected[0], m.injected[1], m.gasL, m.waterL)
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		return fmt.Errorf("sim: save meter state: %w", err)
	}
	if err := os.Rename(tmp, m.cfg.StateFile); err != nil {
		return fmt.Errorf("sim: save meter state in %s: %w", filepath.Dir(m.cfg.StateFile), err)
	}
	return nil
}
