package rollup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/p1logger/p1logger/parser"
)

// # The state file
//
// With Config.StateFile set, the worker writes what it knows of every
// tracked period (per gateway and register: the baseline, the first and
// last reading inside the period, the open segment's first value and the
// sum of the closed segments) to one file after every rollup, and reads it
// when Run starts. A restart then continues the day and the month from the
// file instead of asking InfluxDB.
//
// Layout (integers little endian):
//
//	offset  size  field
//	0       8     magic "P1ROLLST"
//	8       2     version, 1
//	10      2     flags: bit 0 clean (written by the last rollup of a run
//	              that stopped; every reading it wrote to InfluxDB is in it)
//	12      4     payload length n
//	16      n     payload
//	16+n    4     CRC-32C of bytes 0 … 16+n
//
// The payload is a sequence of varints (v: signed, u: unsigned, as
// encoding/binary) and strings (u length, then the bytes):
//
//	v saved: Config.Now of the rollup that wrote it, Unix ns
//	string location name; string bucket
//	u count, then that many strings: the table gateway names and meter ids
//	                                 are indexes into
//	u count of periods, each:
//	  byte kind (0 day, 1 month); v start; v end (Unix ns)
//	  u count of gateways, each:
//	    u name (table index)
//	    v tail: 0, or the time (Unix ns) from which the readings of InfluxDB
//	      must still be replayed into this state (see "Readings the state
//	      does not hold" in the package documentation)
//	    byte fields present (bit f for field f), then per field present:
//	      byte flags: 1 has baseline, 2 has readings in the period, 4 overflow
//	      baseline sample if 1; first, last sample, segment start, closed
//	      sum if 2
//
// A sample is v time (ns after the period's start), a decimal and u meter
// (table index); a decimal is v Int and byte Scale.
//
// Writes go to a temporary file in the same directory, which is synced,
// renamed over the old file, and the directory synced: a crash leaves
// either the old file or the new one, never a mix. A file that fails any
// check (magic, version, length, checksum, a field out of range, another
// zone or bucket than the worker's) is not used: it is logged with the
// reason, and recovery from InfluxDB runs as without a file.
const (
	stateMagic   = "P1ROLLST"
	stateVersion = 1
	stateHeader  = 16
	// maxStateBytes bounds the file read and written: about 60 bytes per
	// register, so 64 MiB hold four periods of 30,000 gateways.
	maxStateBytes = 64 << 20
	flagClean     = 1
)

// savedGw is one gateway's state in one period as the file holds it. tail
// is not zero when acc misses readings InfluxDB has from tail on.
type savedGw struct {
	acc  [numFields]fieldAcc
	tail instant
}

// savedPeriod is one period as the state file holds it.
type savedPeriod struct {
	period // its times in the worker's location
	gws    map[string]*savedGw
}

// savedState is a state file, read back.
type savedState struct {
	saved   time.Time
	clean   bool
	periods []savedPeriod
	// verified holds the gateways whose state at saved is complete for the
	// day and the month containing saved; last their newest reading per
	// register (a zero sample: none, ever).
	verified map[string]*[numFields]sample
}

// find returns the saved period equal to p, or nil.
func (s *savedState) find(p period) *savedPeriod {
	for i := range s.periods {
		sp := &s.periods[i]
		if sp.kind == p.kind && sp.start.Equal(p.start) && sp.end.Equal(p.end) {
			return sp
		}
	}
	return nil
}

// index derives verified from the periods.
func (s *savedState) index(loc *time.Location) {
	s.verified = map[string]*[numFields]sample{}
	d, m := s.find(periodOf(day, s.saved, loc)), s.find(periodOf(month, s.saved, loc))
	if d == nil || m == nil {
		return
	}
	for gw, g := range d.gws {
		mg := m.gws[gw]
		if g.tail != 0 || mg == nil || mg.tail != 0 {
			continue
		}
		var last [numFields]sample
		for _, sp := range s.periods {
			sg := sp.gws[gw]
			if sg == nil {
				continue
			}
			for f := range numFields {
				a := &sg.acc[f]
				c := a.base
				if a.has {
					c = a.last
				} else if !a.hasBase {
					continue
				}
				if c.at.After(last[f].at) {
					last[f] = c
				}
			}
		}
		s.verified[gw] = &last
	}
}

// encodeState returns the file's bytes for the tracked periods.
func (w *Worker) encodeState(saved time.Time, clean bool) ([]byte, error) {
	var e stateEncoder
	e.strings = map[string]uint64{}
	type gwEnc struct {
		name string
		acc  *[numFields]fieldAcc
		tail instant
	}
	var body bytes.Buffer
	var periods [][]gwEnc
	for _, tp := range w.tracked {
		var list []gwEnc
		for _, gw := range w.gateways {
			gp := tp.gws[gw]
			switch {
			case gp == nil || gp.closed:
			case gp.recovered:
				list = append(list, gwEnc{gw, &gp.acc, 0})
			case gp.tail != 0:
				// The snapshot as it was read, without the readings
				// observed since: they are in InfluxDB after the tail too.
				list = append(list, gwEnc{gw, &gp.acc, gp.tail})
			}
		}
		periods = append(periods, list)
	}
	var kept []*tracked
	var keptGws [][]gwEnc
	for i, tp := range w.tracked {
		if len(periods[i]) > 0 {
			kept = append(kept, tp)
			keptGws = append(keptGws, periods[i])
		}
	}
	periods = keptGws
	// Strings first, so that the table precedes their use.
	for i := range kept {
		for _, g := range periods[i] {
			e.intern(g.name)
			for f := range numFields {
				a := &g.acc[f]
				if a.hasBase {
					e.intern(a.base.meter)
				}
				if a.has {
					e.intern(a.first.meter)
					e.intern(a.last.meter)
				}
			}
		}
	}
	e.b = &body
	e.varint(saved.UnixNano())
	e.str(w.cfg.Location.String())
	e.str(w.cfg.Bucket)
	e.uvarint(uint64(len(e.table)))
	for _, s := range e.table {
		e.str(s)
	}
	e.uvarint(uint64(len(kept)))
	for i, tp := range kept {
		body.WriteByte(byte(tp.kind))
		e.varint(tp.start.UnixNano())
		e.varint(tp.end.UnixNano())
		e.uvarint(uint64(len(periods[i])))
		start := instantOf(tp.start)
		for _, g := range periods[i] {
			e.uvarint(e.strings[g.name])
			e.varint(int64(g.tail))
			var present byte
			for f := range numFields {
				if a := &g.acc[f]; a.hasBase || a.has || a.overflow {
					present |= 1 << f
				}
			}
			body.WriteByte(present)
			for f := range numFields {
				if present&(1<<f) == 0 {
					continue
				}
				a := &g.acc[f]
				var flags byte
				if a.hasBase {
					flags |= 1
				}
				if a.has {
					flags |= 2
				}
				if a.overflow {
					flags |= 4
				}
				body.WriteByte(flags)
				if a.hasBase {
					e.sample(a.base, start)
				}
				if a.has {
					e.sample(a.first, start)
					e.sample(a.last, start)
					e.dec(a.segFirst)
					e.dec(a.closed)
				}
			}
		}
	}
	if body.Len() > maxStateBytes-stateHeader-4 {
		return nil, fmt.Errorf("state of %d gateways is %d bytes, more than the %d allowed", len(w.gateways), body.Len(), maxStateBytes)
	}
	out := make([]byte, stateHeader, stateHeader+body.Len()+4)
	copy(out, stateMagic)
	binary.LittleEndian.PutUint16(out[8:], stateVersion)
	var flags uint16
	if clean {
		flags |= flagClean
	}
	binary.LittleEndian.PutUint16(out[10:], flags)
	binary.LittleEndian.PutUint32(out[12:], uint32(body.Len()))
	out = append(out, body.Bytes()...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type stateEncoder struct {
	b       *bytes.Buffer
	table   []string
	strings map[string]uint64
	tmp     [binary.MaxVarintLen64]byte
}

func (e *stateEncoder) intern(s string) {
	if _, ok := e.strings[s]; !ok {
		e.strings[s] = uint64(len(e.table))
		e.table = append(e.table, s)
	}
}

func (e *stateEncoder) varint(v int64)   { e.b.Write(binary.AppendVarint(e.tmp[:0], v)) }
func (e *stateEncoder) uvarint(v uint64) { e.b.Write(binary.AppendUvarint(e.tmp[:0], v)) }
func (e *stateEncoder) str(s string)     { e.uvarint(uint64(len(s))); e.b.WriteString(s) }
func (e *stateEncoder) dec(d parser.Decimal) {
	e.varint(d.Int)
	e.b.WriteByte(d.Scale)
}
func (e *stateEncoder) sample(s sample, start instant) {
	e.varint(int64(s.at - start))
	e.dec(s.v)
	e.uvarint(e.strings[s.meter])
}

// errState wraps every reason a state file is refused.
var errState = errors.New("state file unusable")

// decodeState checks and reads a state file written for loc and bucket.
func decodeState(b []byte, loc *time.Location, bucket string) (*savedState, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errState, fmt.Sprintf(format, args...))
	}
	if len(b) < stateHeader+4 || string(b[:8]) != stateMagic {
		return nil, bad("not a p1logger rollup state (no %q header)", stateMagic)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != stateVersion {
		return nil, bad("version %d, this p1logger reads version %d", v, stateVersion)
	}
	n := int(binary.LittleEndian.Uint32(b[12:]))
	if n != len(b)-stateHeader-4 {
		return nil, bad("payload length %d in the header, %d in the file (cut short or appended to)", n, len(b)-stateHeader-4)
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, bad("checksum mismatch (%08x, want %08x)", got, want)
	}
	st := &savedState{clean: binary.LittleEndian.Uint16(b[10:])&flagClean != 0}
	d := stateDecoder{b: b[stateHeader : len(b)-4]}
	st.saved = time.Unix(0, d.varint())
	if zone := d.str(); d.err == nil && zone != loc.String() {
		return nil, bad("written for time zone %q, not %q", zone, loc.String())
	}
	if bk := d.str(); d.err == nil && bk != bucket {
		return nil, bad("written for bucket %q, not %q", bk, bucket)
	}
	table := make([]string, d.count(1))
	for i := range table {
		table[i] = d.str()
	}
	ref := func() string {
		i := d.uvarint()
		if i >= uint64(len(table)) {
			d.fail("string index %d of %d", i, len(table))
			return ""
		}
		return table[i]
	}
	np := d.count(3)
	for range np {
		if d.err != nil {
			break
		}
		k := kind(d.byte())
		p := period{kind: k, start: time.Unix(0, d.varint()).In(loc), end: time.Unix(0, d.varint()).In(loc)}
		if want := periodOf(k, p.start, loc); k > month || !want.start.Equal(p.start) || !want.end.Equal(p.end) {
			d.fail("period %s to %s is not a local %s of %s", p.start.UTC(), p.end.UTC(), k, loc)
			break
		}
		sp := savedPeriod{period: p, gws: map[string]*savedGw{}}
		start := instantOf(p.start)
		smp := func() sample {
			at := start + instant(d.varint())
			v := d.dec()
			return sample{at: at, v: v, meter: ref()}
		}
		ng := d.count(3)
		for range ng {
			if d.err != nil {
				break
			}
			gw := ref()
			g := &savedGw{tail: instant(d.varint())}
			present := d.byte()
			for f := range numFields {
				if present&(1<<f) == 0 {
					continue
				}
				a := &g.acc[f]
				flags := d.byte()
				a.hasBase, a.has, a.overflow = flags&1 != 0, flags&2 != 0, flags&4 != 0
				if a.hasBase {
					a.base = smp()
				}
				if a.has {
					a.first, a.last = smp(), smp()
					a.segFirst, a.closed = d.dec(), d.dec()
				}
				switch {
				case d.err != nil:
				case a.hasBase && !a.base.at.Before(start):
					d.fail("%s %s %s: baseline at %s is not before the period", gw, p, fieldNames[f], a.base.at.Time().UTC())
				case a.has && (a.first.at.Before(start) || !a.first.at.Before(instantOf(p.end)) || a.last.at.Before(a.first.at) || !a.last.at.Before(instantOf(p.end))):
					d.fail("%s %s %s: readings at %s and %s are not in order inside the period", gw, p, fieldNames[f],
						a.first.at.Time().UTC(), a.last.at.Time().UTC())
				}
			}
			if _, dup := sp.gws[gw]; dup && d.err == nil {
				d.fail("gateway %q twice in %s", gw, p)
			}
			sp.gws[gw] = g
		}
		st.periods = append(st.periods, sp)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the last period", len(d.b))
	}
	if d.err != nil {
		return nil, bad("%v", d.err)
	}
	st.index(loc)
	return st, nil
}

type stateDecoder struct {
	b   []byte
	err error
}

func (d *stateDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.b = nil
}

func (d *stateDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("cut short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// count reads a count of items that take at least min bytes each, refusing
// one the rest of the payload cannot hold (so that a damaged count never
// allocates much).
func (d *stateDecoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail("count %d larger than the file", n)
		return 0
	}
	return int(n)
}

func (d *stateDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string of %d bytes cut short", n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *stateDecoder) dec() parser.Decimal {
	v := parser.Decimal{Int: d.varint(), Scale: d.byte()}
	if v.Scale > 18 {
		d.fail("decimal scale %d", v.Scale)
	}
	return v
}

// readState reads the state file at path. It returns nil and no error when
// there is none.
func readState(path string, loc *time.Location, bucket string) (*savedState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errState, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", errState, err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", errState, maxStateBytes)
	}
	return decodeState(b, loc, bucket)
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so that
// after a crash path holds the old or the new data whole.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// tailFrom returns where the readings missing from a state snapshot of p
// may begin: at the oldest of the registers' last readings, or at p's start
// for a register that has a baseline but no reading in p yet (a gas meter
// captures once an hour on older meters, and its first capture of the
// period may lie before the electricity readings the state holds).
// Registers never read are left out.
func tailFrom(acc *[numFields]fieldAcc, p period) instant {
	from, any := instant(0), false
	for f := range numFields {
		a := &acc[f]
		var c instant
		switch {
		case a.has:
			c = a.last.at
		case a.hasBase:
			c = instantOf(p.start)
		default:
			continue
		}
		if !any || c < from {
			from, any = c, true
		}
	}
	if !any || from < instantOf(p.start) {
		return instantOf(p.start)
	}
	return from
}

// replayRuns files a tail recovery's runs of one register into a, whose
// period is p. Readings not later than a's last one are skipped: the state
// has them already, and one at exactly that time may be the low side of a
// drop the state has already cut a segment at.
func replayRuns(a *fieldAcc, runs []*run, p period) {
	later := func(at instant) bool { return !a.has || at.After(a.last.at) }
	for _, r := range runs {
		if later(r.first.at) {
			a.add(r.first, p)
		}
		for _, d := range r.drops {
			if later(d.at) {
				a.add(sample{at: d.at, v: d.prev, meter: r.first.meter}, p)
				a.add(sample{at: d.at, v: d.v, meter: r.first.meter}, p)
			}
		}
		if later(r.last.at) {
			a.add(r.last, p)
		}
	}
}

// gateways returns the gateways of the state file, sorted.
func (s *savedState) gateways() []string {
	set := map[string]bool{}
	for _, sp := range s.periods {
		for gw := range sp.gws {
			set[gw] = true
		}
	}
	out := make([]string, 0, len(set))
	for gw := range set {
		out = append(out, gw)
	}
	sort.Strings(out)
	return out
}

// loadState reads Config.StateFile for the first rollup, logging what it
// found and why it is not used when it is not. It then marks the file as
// not clean on disk, so that a crash of this run is not taken for a clean
// stop of the one before.
func (w *Worker) loadState(now time.Time) {
	path := w.cfg.StateFile
	if path == "" {
		w.log.Info("no local rollup state file: every start recovers the day and month from influxdb")
		return
	}
	t0 := time.Now()
	st, err := readState(path, w.cfg.Location, w.cfg.Bucket)
	switch {
	case err != nil:
		w.log.Warn("local rollup state not used; recovering from influxdb", "file", path, "reason", err)
	case st == nil:
		w.log.Info("no local rollup state yet; recovering from influxdb", "file", path)
	case st.saved.After(now.Add(maxAhead)):
		w.log.Warn("local rollup state not used; recovering from influxdb", "file", path,
			"reason", fmt.Sprintf("written at %s, later than now (%s): the clock went back", st.saved.UTC(), now.UTC()))
		st = nil
	default:
		// Gateways of the file that are no longer configured are not
		// rolled up (unless Observe reports them in the first rollup):
		// the file would keep them forever.
		w.st = st
		w.log.Info("local rollup state read", "file", path, "saved", st.saved, "clean_stop", st.clean,
			"gateways", len(st.gateways()), "verified", len(st.verified), "periods", len(st.periods), "took", time.Since(t0))
	}
	w.saveState(now, false)
}

// saveState rewrites the state file with the tracked periods; clean says
// that it is the last rollup of the run. A failed write is logged; the old
// file is then removed, since it no longer says what this run saw, and when
// even that fails the state is not written again by this run (a clean file
// left from an earlier stop would otherwise be trusted after a crash).
func (w *Worker) saveState(now time.Time, clean bool) {
	path := w.cfg.StateFile
	if path == "" || w.stateBroken {
		return
	}
	b, err := w.encodeState(now, clean)
	if err == nil {
		err = writeFileAtomic(path, b)
	}
	if err == nil {
		return
	}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		w.stateBroken = true
		w.log.Error("local rollup state can neither be written nor removed; not writing it again", "file", path, "reason", err, "remove", rerr)
		return
	}
	w.warn("state", "writing the local rollup state failed; the next start recovers from influxdb", "file", path, "reason", err)
}

// fromState returns gw's state in p as the state file read at start has
// it: a period in the file continues from it (after a tail recovery when
// the run that wrote it did not stop cleanly); a period that ended before
// the file was written, and is not in it, is closed; after a clean stop a
// period that began after it starts with the last readings as baselines.
// Anything else (no file, a gateway not in it, a period it does not cover)
// is left to recovery from InfluxDB.
func (w *Worker) fromState(gw string, p period) *gwPeriod {
	st := w.st
	if st == nil {
		return &gwPeriod{}
	}
	if sp := st.find(p); sp != nil {
		g := sp.gws[gw]
		if g == nil {
			return &gwPeriod{}
		}
		gp := &gwPeriod{acc: g.acc, tail: g.tail}
		if gp.tail == 0 && !st.clean {
			gp.tail = tailFrom(&gp.acc, p)
		}
		gp.recovered = gp.tail == 0
		return gp
	}
	last := st.verified[gw]
	switch {
	case last == nil:
	case !p.end.After(st.saved):
		return &gwPeriod{recovered: true, closed: true}
	case st.clean && !p.start.Before(st.saved):
		gp := &gwPeriod{recovered: true}
		for f := range numFields {
			if !last[f].at.IsZero() {
				gp.acc[f].add(last[f], p)
			}
		}
		return gp
	}
	return &gwPeriod{}
}

// view returns the accumulators gw's points and Current show for p: the
// recovered ones, or, while a tail recovery is pending, the state's
// snapshot with the readings observed since. It reports false when there is
// nothing to show.
func (gp *gwPeriod) view(p period) (*[numFields]fieldAcc, bool) {
	switch {
	case gp.closed:
		return nil, false
	case gp.recovered:
		return &gp.acc, true
	case gp.tail == 0:
		return nil, false
	}
	acc := gp.acc
	for i := range gp.pending {
		o := &gp.pending[i]
		for f := range numFields {
			if s, ok := o.sample(f); ok {
				acc[f].add(s, p)
			}
		}
	}
	return &acc, true
}

// recoverTail replays into the state snapshots of gws in tp the readings
// InfluxDB has from their tails on, then the readings observed since the
// start, as recoverBatch does for a whole period. The baselines are the
// snapshots': they lie before the period and do not move.
func (w *Worker) recoverTail(ctx context.Context, tp *tracked, gws []string, skip error) error {
	t0 := time.Now()
	from := instantOf(tp.end)
	for _, gw := range gws {
		from = min(from, tp.gws[gw].tail)
	}
	span := period{kind: tp.kind, start: from.Time(), end: tp.end}
	var sums map[string]*summary
	err := skip
	if skip == nil {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		sums, _, err = w.recoverRuns(qctx, span, gws)
		cancel()
		if err != nil && ctx.Err() != nil {
			return err
		}
		w.resize(len(gws), time.Since(t0), tooMuch(err))
	}
	if err != nil {
		w.warn("tail-"+tp.kind.String(), "checking influxdb for readings the local rollup state misses failed; showing the state with live readings meanwhile, retrying next interval",
			"period", tp.period.String(), "gateways", len(gws), "from", from.Time(), "err", err)
		return err
	}
	for _, gw := range gws {
		gp := tp.gws[gw]
		if s := sums[gw]; s != nil {
			for f := range numFields {
				replayRuns(&gp.acc[f], s[f].runs, tp.period)
			}
		}
		for i := range gp.pending {
			gp.apply(&gp.pending[i], tp.period)
		}
		gp.pending, gp.tail, gp.recovered = nil, 0, true
	}
	w.log.Debug("tail recovered", "period", tp.period.String(), "gateways", len(gws), "from", from.Time(), "took", time.Since(t0))
	return nil
}
