package spool

import "time"

// rateLimit lets one log line through per interval and counts the rest.
type rateLimit struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now and how many were
// suppressed since the last one that was.
func (l *rateLimit) allow(now time.Time, every time.Duration) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
