//go:build !linux

package main

import (
	"errors"
	"net"
)

func dialInNetns(path, addr string) (net.Conn, error) {
	return nil, errors.New("network namespaces need Linux")
}

func removeStaleNetns() {}
