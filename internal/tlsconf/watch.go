package tlsconf

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce gathers the burst of events one update makes (a tool writing
// cert and key, a rename, kubelet's symlink swap) into one reload.
const debounce = 100 * time.Millisecond

// Watch reloads when a source file changes and, if interval > 0, every
// interval (ghostunnel's --timed-reload, which also catches what events
// miss, such as a watched directory being replaced or a network file
// system). It reports each reload's result to onReload, or logs failures
// when onReload is nil. It returns nil when ctx is done, or an error if the
// watches cannot be set up.
//
// Watch observes the parent directories rather than the files, because
// tools replace files by renaming a new one over them (cert-manager,
// certbot's symlinks) or, like kubelet for Secret volumes, by swapping a
// "..data" symlink the files point through; a watch on the file itself
// would stay on the old inode and go silent.
func (s *Store) Watch(ctx context.Context, interval time.Duration, onReload func(error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching TLS files: %w", err)
	}
	defer w.Close()
	names, dirs := make(map[string]bool), make(map[string]bool)
	for _, p := range s.src.files() {
		p = filepath.Clean(p)
		names[p] = true
		if dir := filepath.Dir(p); !dirs[dir] {
			dirs[dir] = true
			if err := w.Add(dir); err != nil {
				return fmt.Errorf("watching %s: %w", dir, err)
			}
		}
	}
	if s.watchReady != nil {
		s.watchReady()
	}

	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	settle := time.NewTimer(debounce)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watching TLS files: watcher closed")
			}
			if relevant(ev, names) {
				settle.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watching TLS files: watcher closed")
			}
			// Overflow or a transient failure: reload to be safe.
			s.log.Warn("watching TLS files", logError, err)
			settle.Reset(debounce)
		case <-settle.C:
			s.report(onReload)
		case <-tick:
			s.report(onReload)
		}
	}
}

func (s *Store) report(onReload func(error)) {
	err := s.Reload()
	if onReload != nil {
		onReload(err)
	} else if err != nil {
		s.log.Error("TLS reload failed; keeping the previous certificate", logError, err)
	}
}

// relevant reports whether ev may have changed a source file: an event on
// one of their names, or on a ".."-prefixed entry (kubelet's atomic writer
// swaps "..data"). Attribute-only changes are ignored.
func relevant(ev fsnotify.Event, names map[string]bool) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	p := filepath.Clean(ev.Name)
	return names[p] || strings.HasPrefix(filepath.Base(p), "..")
}
