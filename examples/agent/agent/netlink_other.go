//go:build !linux

package agent

import (
	"errors"
	"net/netip"
)

var errNotLinux = errors.New("needs Linux")

func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return errNotLinux
}

func routeTarget(netip.Addr) (Target, error) { return Target{}, errNotLinux }
