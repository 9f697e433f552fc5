package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// inheritedFD is a listening socket passed by systemd socket activation.
type inheritedFD struct {
	fd   int
	name string // FileDescriptorName= of the socket unit ("unknown" if none)
}

// socketActivation reads the sockets systemd passed (sd_listen_fds(3)):
// LISTEN_FDS sockets from descriptor 3, named by LISTEN_FDNAMES, meant for
// this process if LISTEN_PID is its pid. It unsets the variables so no
// child inherits them.
func socketActivation(getenv func(string) string) ([]inheritedFD, error) {
	n := getenv("LISTEN_FDS")
	if n == "" {
		return nil, nil
	}
	if pid := getenv("LISTEN_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return nil, nil // meant for another process
	}
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	count, err := strconv.Atoi(n)
	if err != nil || count < 0 {
		return nil, fmt.Errorf("LISTEN_FDS=%q: want a number of descriptors", n)
	}
	names := strings.Split(getenv("LISTEN_FDNAMES"), ":")
	var out []inheritedFD
	for i := 0; i < count; i++ {
		name := "unknown"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		fd := 3 + i
		syscall.CloseOnExec(fd)
		out = append(out, inheritedFD{fd: fd, name: name})
	}
	return out, nil
}

// resolveActivated replaces "systemd:NAME" listener addresses with the
// "fd:N" of the inherited socket of that name. With no listeners asked for
// at all (and sockets inherited), every inherited socket is a listener.
func resolveActivated(addrs []string, fds []inheritedFD) ([]string, error) {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		name, ok := strings.CutPrefix(a, "systemd:")
		if !ok {
			out = append(out, a)
			continue
		}
		found := false
		for _, f := range fds {
			if f.name == name {
				out = append(out, "fd:"+strconv.Itoa(f.fd))
				found = true
			}
		}
		if !found {
			if len(fds) == 0 {
				return nil, fmt.Errorf("listener %s: no sockets were passed by systemd (LISTEN_FDS is not set for this process)", a)
			}
			var have []string
			for _, f := range fds {
				have = append(have, f.name)
			}
			return nil, fmt.Errorf("listener %s: systemd passed no socket named %q (it passed: %s)", a, name, strings.Join(have, ", "))
		}
	}
	return out, nil
}
