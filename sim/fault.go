package sim

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// FaultKind names one way a gateway misbehaves.
type FaultKind uint8

// The fault kinds. BadCRC, Garbage, Cut and Drip hit single telegrams;
// Silence, Disconnect and Refuse hit connections and the listener.
const (
	// FaultBadCRC changes one digit of a register value after the CRC was
	// computed, so the CRC no longer matches. Profiles without a CRC (nl22)
	// get a '?' instead of the digit, which makes that line unparseable.
	FaultBadCRC FaultKind = iota + 1
	// FaultGarbage writes 8–80 random bytes before the telegram. The noise
	// rotates between printable bytes with stray "!" (no "/"), binary bytes
	// (no "/"), and a fragment that starts with "/" like a cut header.
	FaultGarbage
	// FaultCut writes the telegram only up to a random byte before its end
	// line "!…"; the next telegram follows whole at the next interval.
	FaultCut
	// FaultDrip writes the telegram one byte at a time, spread over
	// Config.DripFor.
	FaultDrip
	// FaultSilence sends nothing to anyone for a while; connections stay open.
	FaultSilence
	// FaultDisconnect closes connections after a number of telegrams.
	FaultDisconnect
	// FaultRefuse closes the listener for a while, so that connecting
	// fails; open connections go on.
	FaultRefuse
)

const numFaultKinds = int(FaultRefuse) + 1

var faultNames = [numFaultKinds]string{"", "badcrc", "garbage", "cut", "drip", "silence", "disconnect", "refuse"}

// String returns the kind's name as the control endpoint and flags spell it.
func (k FaultKind) String() string {
	if int(k) < numFaultKinds && k != 0 {
		return faultNames[k]
	}
	return fmt.Sprintf("fault(%d)", uint8(k))
}

// ParseFaultKind returns the kind named s, or an error listing the names.
func ParseFaultKind(s string) (FaultKind, error) {
	for k := FaultBadCRC; int(k) < numFaultKinds; k++ {
		if faultNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown fault kind %q (want %s)", s, strings.Join(faultNames[1:], ", "))
}

// Fault is one injection request, see [Server.Inject].
type Fault struct {
	Kind FaultKind
	// Count: for BadCRC, Garbage, Cut and Drip, how many of the next
	// telegrams the server writes (on any connection) are hit; 0 means 1.
	// For Disconnect, how many more telegrams each open connection gets
	// before it is closed; 0 closes them now.
	Count int
	// For is how long Silence and Refuse last.
	For time.Duration
}

// Faults are injected all the time, from the start. Every-N counts are per
// connection: with BadCRCEvery 10 the 10th, 20th, … telegram on each
// connection has a bad CRC. Zero disables a fault.
type Faults struct {
	BadCRCEvery     int
	GarbageEvery    int
	CutEvery        int
	DripEvery       int
	DisconnectAfter int           // close each connection after this many telegrams
	SilenceFor      time.Duration // go silent for SilenceFor …
	SilenceEvery    time.Duration // … every SilenceEvery (measured from Run)
	RefuseFor       time.Duration // close the listener for RefuseFor …
	RefuseEvery     time.Duration // … every RefuseEvery
}

func (f Faults) validate() error {
	for _, n := range []struct {
		name string
		v    int
	}{{"BadCRCEvery", f.BadCRCEvery}, {"GarbageEvery", f.GarbageEvery}, {"CutEvery", f.CutEvery},
		{"DripEvery", f.DripEvery}, {"DisconnectAfter", f.DisconnectAfter}} {
		if n.v < 0 {
			return fmt.Errorf("sim: Faults.%s is negative", n.name)
		}
	}
	if (f.SilenceFor > 0) != (f.SilenceEvery > 0) || f.SilenceFor < 0 || f.SilenceEvery < 0 {
		return errors.New("sim: Faults.SilenceFor and SilenceEvery must both be positive or both zero")
	}
	if f.SilenceFor >= f.SilenceEvery && f.SilenceEvery > 0 {
		return errors.New("sim: Faults.SilenceFor must be shorter than SilenceEvery")
	}
	if (f.RefuseFor > 0) != (f.RefuseEvery > 0) || f.RefuseFor < 0 || f.RefuseEvery < 0 {
		return errors.New("sim: Faults.RefuseFor and RefuseEvery must both be positive or both zero")
	}
	if f.RefuseFor >= f.RefuseEvery && f.RefuseEvery > 0 {
		return errors.New("sim: Faults.RefuseFor must be shorter than RefuseEvery")
	}
	return nil
}

func every(n int, seq uint64) bool { return n > 0 && seq%uint64(n) == 0 }

// corrupt returns a copy of frame with one digit of a "1-0:" register value
// replaced, and the index of that byte. With a CRC the new byte is another
// digit, which only the CRC can tell; without one it is '?'.
func corrupt(frame []byte, hasCRC bool, r *rand.Rand) ([]byte, int) {
	var cand []int
	regLine, group := false, -1
	for i, c := range frame {
		switch c {
		case '\n':
			regLine, group = bytes.HasPrefix(frame[i+1:], []byte("1-0:")), -1
		case '(':
			group = i + 1
		case ')':
			group = -1
		case '*':
			if regLine && group >= 0 {
				for j := group; j < i; j++ {
					if frame[j] >= '0' && frame[j] <= '9' {
						cand = append(cand, j)
					}
				}
			}
			group = -1
		}
	}
	out := append([]byte(nil), frame...)
	if len(cand) == 0 {
		return out, -1
	}
	at := cand[r.IntN(len(cand))]
	if hasCRC {
		out[at] = '0' + (out[at]-'0'+1+byte(r.IntN(9)))%10
	} else {
		out[at] = '?'
	}
	return out, at
}

// garbage returns noise to write between telegrams; variant picks its kind.
func garbage(r *rand.Rand, variant int) []byte {
	n := 8 + r.IntN(73)
	b := make([]byte, n)
	const printable = "0123456789ABCDEF()*.:-! \r\n"
	switch variant % 3 {
	case 0: // printable, stray end marks, no "/"
		for i := range b {
			b[i] = printable[r.IntN(len(printable))]
		}
		b[r.IntN(n)] = '!'
	case 1: // binary, no "/"
		for i := range b {
			b[i] = byte(r.IntN(256))
			if b[i] == '/' {
				b[i] = 0
			}
		}
	default: // a fragment that looks like the start of a telegram
		b[0] = '/'
		for i := 1; i < n; i++ {
			b[i] = printable[r.IntN(len(printable))]
		}
	}
	return b
}
