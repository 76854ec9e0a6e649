//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package spool

import "errors"

// lockDir does nothing where flock(2) is missing: the spool then relies on
// being configured for one process only.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }

// ErrLocked is wrapped by Open's error when another process uses the
// spool directory (never, where flock(2) is missing).
var ErrLocked = errors.New("in use by another process")
