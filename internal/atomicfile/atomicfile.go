// Package atomicfile writes files so that a reader, or a process killed
// mid-write, sees either the old content or the new, never a mix: write to a
// temporary file in the same directory, fsync, rename, fsync the directory.
// A Batch stages several files and makes them visible together, so a
// failure before the commit changes nothing at all. It is a leaf any
// package may import.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// WriteFile replaces path with data, with mode perm set explicitly (the
// umask does not apply, so key files are 0600 whatever it is).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	var b Batch
	if err := b.Add(path, data, perm); err != nil {
		return err
	}
	return b.Commit()
}

// Batch is a set of staged files: written and synced under temporary names
// next to their targets, renamed into place by Commit.
type Batch struct {
	staged []staged
}

type staged struct{ tmp, path string }

// File is one file for AddAll.
type File struct {
	Path string
	Data []byte
	Perm os.FileMode
}

// AddAll stages files concurrently: each stage ends in an fsync, and on a
// disk where that takes milliseconds, waiting for them one after the other
// is most of the cost of issuing a certificate. On error nothing is staged.
func (b *Batch) AddAll(files ...File) error {
	parts := make([]Batch, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = parts[i].Add(f.Path, f.Data, f.Perm)
		}()
	}
	wg.Wait()
	for _, p := range parts {
		b.staged = append(b.staged, p.staged...)
	}
	if err := errors.Join(errs...); err != nil {
		b.Abort()
		return err
	}
	return nil
}

// Add writes data to a temporary file beside path. Nothing is visible at
// path until Commit. On error the batch is aborted.
func (b *Batch) Add(path string, data []byte, perm os.FileMode) (err error) {
	defer func() {
		if err != nil {
			b.Abort()
		}
	}()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	b.staged = append(b.staged, staged{tmp: f.Name(), path: path})
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Commit renames every staged file into place, in the order added, and
// syncs their directories. A rename failure is reported; files renamed
// before it stay in place (renames within a directory fail only on a
// broken filesystem).
func (b *Batch) Commit() error {
	dirs := map[string]bool{}
	var errs []error
	for _, s := range b.staged {
		if err := os.Rename(s.tmp, s.path); err != nil {
			errs = append(errs, fmt.Errorf("writing %s: %w", s.path, err))
			os.Remove(s.tmp)
			continue
		}
		dirs[filepath.Dir(s.path)] = true
	}
	b.staged = nil
	for d := range dirs {
		syncDir(d)
	}
	return errors.Join(errs...)
}

// Abort removes the staged files; nothing at their targets changed.
func (b *Batch) Abort() {
	for _, s := range b.staged {
		os.Remove(s.tmp)
	}
	b.staged = nil
}

// syncDir makes renames durable. Windows cannot open a directory for sync;
// there a rename is as durable as NTFS makes it.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	// The rename is done and visible, and the file's data was synced
	// before it: a failure here cannot be undone, and reporting it would
	// tell the caller the write failed while the new file is in place.
	_ = d.Sync()
	d.Close()
}
