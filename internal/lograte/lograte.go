// Package lograte rate-limits repeated log lines: one gets through per
// interval, and the next one that does says how many were held back. The
// readers, the writer and the spool all use it, so that a gateway or a
// server that fails every second logs once a minute, not every second.
package lograte

import "time"

// Limit lets one log line through per interval and counts the rest. The
// zero value is ready to use; it is not safe for concurrent use (each user
// holds it under its own lock or in its own goroutine).
type Limit struct {
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be logged at now, every being the
// interval, and how many lines were suppressed since the last one allowed.
func (l *Limit) Allow(now time.Time, every time.Duration) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
