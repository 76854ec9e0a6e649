//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
)

// diskRoom returns the bytes the spool in dir may grow into: the free
// space of its file system for unprivileged users plus the segment files it
// already holds; 0 when unknown. dir need not exist yet: its nearest
// existing parent is asked.
func diskRoom(dir string) int64 {
	var st syscall.Statfs_t
	for d := dir; ; d = filepath.Dir(d) {
		if err := syscall.Statfs(d, &st); err == nil {
			break
		}
		if d == filepath.Dir(d) {
			return 0
		}
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	held := int64(0)
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && filepath.Ext(e.Name()) == ".seg" {
				held += fi.Size()
			}
		}
	}
	return free + held
}
