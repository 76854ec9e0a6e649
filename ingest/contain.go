package ingest

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// contain runs fn, which decodes or encodes the telegram raw of gateway g
// (stage says which), and turns a panic in it into an internal error: logged
// (rate-limited by lim) with the gateway and the telegram's bytes, counted in
// g's InternalErrors, and reported as true so that the caller drops the
// telegram.
//
// This is the one place in p1logger that recovers from a panic, on purpose.
// It runs where parsing happens, in the parser pool, around each frame: a
// panic there costs that frame, and the parser goes on with the next one,
// of whichever gateway.
// Decoding and encoding are the only code that runs on bytes chosen by
// someone else (a meter, a gateway, a network), one telegram at a time, for
// one of thousands of gateways: a bug there, such as an index out of range
// that one odd register triggers, must cost that telegram, not every
// gateway's data, and not again after every restart as the meter repeats
// it. A panic anywhere else (the writer, the spool, the rollups) is a bug
// in state shared by all gateways, which a recover could only leave
// inconsistent; it crashes the process, as Go intends.
func contain(g *Gateway, stage string, raw []byte, log *slog.Logger, lim allower, now time.Time, fn func()) (panicked bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		panicked = true
		g.internalErrors.Add(1)
		if ok, suppressed := lim.Allow(now, time.Minute); ok {
			log.Error("internal error: telegram dropped (please report this with the telegram)",
				"gateway", g.name, "stage", stage, "panic", fmt.Sprint(v),
				"telegram", fmt.Sprintf("%q", raw), "stack", string(debug.Stack()),
				"internal_errors", g.internalErrors.Load(), "suppressed_since_last", suppressed)
		}
	}()
	if h := panicHook.Load(); h != nil {
		(*h)(stage, g.name, raw)
	}
	fn()
	return false
}

// allower is a log rate limit: rateLimit for one goroutine, syncLimit for
// the parsers, which share each gateway's.
type allower interface {
	Allow(now time.Time, every time.Duration) (bool, int)
}

// panicHook, when set, is called inside contain before fn: tests use it to
// make a telegram panic as a bug in the parser or the encoder would.
var panicHook atomic.Pointer[func(stage, gateway string, raw []byte)]

// Stages passed to contain.
const (
	stageDecode = "decode" // a parser checking a received telegram
	stageEncode = "encode" // the Batcher turning the newest telegram into points
)
