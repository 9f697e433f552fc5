package config

import (
	"errors"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
)

// This file holds the checks that look at the file system: where sockets
// and logs will be created. Nothing is created or changed.

// socketDir checks that a unix socket can be created at path: its
// directory exists and is writable (once per directory), and nothing but
// a stale socket is in the way.
func (p *parser) socketDir(n *yaml.Node, path string) {
	dir := filepath.Dir(path)
	if !p.dirChecked[dir] {
		p.dirChecked[dir] = true
		if why := checkDir(dir); why != "" {
			p.errAt(n, "socket directory %s %s", dir, why)
			return
		}
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		p.errAt(n, "%s exists and is not a socket; fastsocks replaces only stale sockets, so move it or pick another path", path)
	}
}

// checkDir says why files cannot be created in dir, or "".
func checkDir(dir string) string {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "does not exist"
	case err != nil:
		return pathErr(err)
	case !fi.IsDir():
		return "is not a directory"
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		if errors.Is(err, unix.EROFS) {
			return "is not writable (read-only file system)"
		}
		return "is not writable"
	}
	return ""
}

// checkLogPath says why a log file cannot be opened for appending at path,
// or "".
func checkLogPath(path string) string {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return "is a directory"
	case err == nil:
		if unix.Access(path, unix.W_OK) != nil {
			return "is not writable"
		}
		return ""
	case !errors.Is(err, os.ErrNotExist):
		return pathErr(err)
	}
	if why := checkDir(filepath.Dir(path)); why != "" {
		return "directory " + filepath.Dir(path) + " " + why
	}
	return ""
}
