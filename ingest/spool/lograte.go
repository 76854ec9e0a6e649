package spool

import "github.com/p1logger/p1logger/internal/lograte"

// rateLimit lets one log line through per interval and counts the rest.
type rateLimit = lograte.Limit
