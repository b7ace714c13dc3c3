package keystore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/term"
)

// MaxPassphraseFile bounds a passphrase file read; a passphrase is short,
// and pointing the flag at a large file by mistake should fail fast.
const MaxPassphraseFile = 4096

// FromFile reads the passphrase from the first line of a file, like
// openssl's -passin file:. Trailing CR/LF are not part of it.
func FromFile(path string) Passphrase {
	return func() ([]byte, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase file: %w", err)
		}
		if len(data) > MaxPassphraseFile {
			return nil, fmt.Errorf("passphrase file %s: larger than %d bytes", path, MaxPassphraseFile)
		}
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			data = data[:i]
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("passphrase file %s: empty first line", path)
		}
		return data, nil
	}
}

// FromEnv reads the passphrase from an environment variable.
func FromEnv(name string) Passphrase {
	return func() ([]byte, error) {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("%s is not set", name)
		}
		return []byte(v), nil
	}
}

// ErrNoTerminal: a prompt was needed but stdin is not a terminal.
var ErrNoTerminal = errors.New("no passphrase given and stdin is not a terminal")

// Prompt asks on the terminal, without echo, writing the prompt to stderr.
// With confirm it asks twice and insists on at least 8 bytes: that is the
// form used when a new key is encrypted.
func Prompt(prompt string, confirm bool) Passphrase {
	return func() ([]byte, error) {
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return nil, ErrNoTerminal
		}
		fmt.Fprint(os.Stderr, prompt+": ")
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		if !confirm {
			return pw, nil
		}
		if len(pw) < 8 {
			return nil, errors.New("passphrase shorter than 8 characters")
		}
		fmt.Fprint(os.Stderr, "Repeat: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("passphrases do not match")
		}
		return pw, nil
	}
}

// Once memoizes a Passphrase so a process asks at most once.
func Once(p Passphrase) Passphrase {
	if p == nil {
		return nil
	}
	return sync.OnceValues(p)
}

// Source says where a passphrase comes from. The first that is set wins:
// a file (a flag naming it), an environment variable, a terminal prompt.
type Source struct {
	File string
	Env  string
	// Prompt is shown on the terminal; with Confirm it asks twice, the
	// form used for a new passphrase.
	Prompt  string
	Confirm bool
}

// Passphrase returns the passphrase source s selects.
func (s Source) Passphrase() Passphrase {
	switch {
	case s.File != "":
		return FromFile(s.File)
	case s.Env != "" && os.Getenv(s.Env) != "":
		return FromEnv(s.Env)
	}
	return Prompt(s.Prompt, s.Confirm)
}
