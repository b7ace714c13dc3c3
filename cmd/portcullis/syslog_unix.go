//go:build !windows

package main

import (
	"fmt"
	"io"
	"log/syslog"
)

// syslogWriter sends log lines to the local syslog daemon (ghostunnel's
// --syslog), facility daemon.
func syslogWriter() (io.Writer, error) {
	w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "portcullis")
	if err != nil {
		return nil, fmt.Errorf("--syslog: %w", err)
	}
	return w, nil
}
