package sim

import (
	"sync"
	"time"
)

// StepClock returns a clock for Config.Now or Meter.Render callers: the
// first call returns start, every later call step more. It is safe for
// concurrent use, and deterministic when calls come in a known order.
func StepClock(start time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	next := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := next
		next = next.Add(step)
		return t
	}
}

// ScaledClock returns a clock that starts at start and runs speed times as
// fast as the real one: with speed 60 a simulated day passes in 24 minutes.
func ScaledClock(start time.Time, speed float64) func() time.Time {
	t0 := time.Now()
	return func() time.Time {
		return start.Add(time.Duration(float64(time.Since(t0)) * speed))
	}
}
