package enroll

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// Facts are what a device says about itself. They are claims: they name
// the device record and feed the allow-list, and they are checked here only
// for shape, so that hostile values cannot bloat the store or forge lines
// in a log or a terminal.
type Facts = store.Facts

// maxFact bounds every fact; real values are well under it.
const maxFact = 256

// ErrInvalidFacts: a fact is missing, too long or not printable text.
var ErrInvalidFacts = errors.New("invalid device facts")

// checkFacts checks the shape of untrusted facts: Hostname is required;
// every fact is at most maxFact bytes of valid UTF-8 without control
// characters; an owner e-mail, if given, has one '@' with text either side.
func checkFacts(f Facts) error {
	fields := []struct{ name, v string }{
		{"hostname", f.Hostname}, {"os", f.OS}, {"os_version", f.OSVersion},
		{"hardware_serial", f.HardwareSerial}, {"agent_version", f.AgentVersion}, {"owner_email", f.OwnerEmail},
	}
	for _, fl := range fields {
		if err := checkFact(fl.v); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidFacts, fl.name, err)
		}
	}
	if strings.TrimSpace(f.Hostname) == "" {
		return fmt.Errorf("%w: hostname: missing", ErrInvalidFacts)
	}
	if e := f.OwnerEmail; e != "" {
		local, domain, ok := strings.Cut(e, "@")
		if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
			return fmt.Errorf("%w: owner_email: not an address", ErrInvalidFacts)
		}
	}
	return nil
}

func checkFact(v string) error {
	if len(v) > maxFact {
		return fmt.Errorf("%d bytes (limit %d)", len(v), maxFact)
	}
	if !utf8.ValidString(v) {
		return errors.New("not UTF-8")
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return errors.New("control character")
	}
	return nil
}
