//go:build !linux

package main

import "errors"

func runEpollRelay(listenAddr, to string, connect bool) error {
	return errors.New("-engine epoll: Linux only")
}
