//go:build windows

package main

import (
	"errors"
	"io"
)

// syslogWriter: Windows has no syslog; use the event log through the
// service wrapper instead.
func syslogWriter() (io.Writer, error) {
	return nil, errors.New("--syslog is not available on Windows")
}
