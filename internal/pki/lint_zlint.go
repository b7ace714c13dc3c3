//go:build !windows

package pki

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// LintAvailable reports whether this build lints before it signs. zcrypto,
// which zlint parses with, does not build for Windows; Windows binaries are
// for the agent, and a CA should run on Linux or macOS.
const LintAvailable = true

// LintSources returns the zlint sources every certificate is linted
// against before it is signed, in a fresh slice. The RFCs are too weak
// alone to catch a sloppy private CA, so the CA/Browser Forum Baseline
// Requirements join them as a hygiene baseline, minus the web-PKI-only
// lints in PrivatePKIExemptions.
func LintSources() lint.SourceList {
	return lint.SourceList{
		lint.RFC5280, lint.RFC5480, lint.RFC3279, lint.RFC8813, lint.RFC5891,
		lint.Community, lint.CABFBaselineRequirements,
	}
}

func registry(exemptions ...map[string]string) func() (lint.Registry, error) {
	return sync.OnceValues(func() (lint.Registry, error) {
		var names []string
		for _, m := range exemptions {
			for n := range m {
				names = append(names, n)
			}
		}
		reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: LintSources(), ExcludeNames: names})
		if err != nil {
			return nil, err
		}
		return namesOnce{Registry: reg, names: reg.Names()}, nil
	})
}

// namesOnce is a Registry whose Names is computed once: zlint calls it on
// every certificate only to size a map, and zlint's own sorts all the
// names each time (a tenth of the cost of linting a certificate, which
// the CA pays on every issuance and renewal).
type namesOnce struct {
	lint.Registry
	names []string
}

func (r namesOnce) Names() []string { return r.names }

var (
	onlineRegistry  = registry(privatePKIExemptions)
	offlineRegistry = registry(privatePKIExemptions, offlineRevocationExemptions)
)

// LintDER lints a DER certificate and returns an error wrapping ErrLint that
// names every lint at warning level or worse.
func LintDER(der []byte, o LintOptions) error {
	reg, err := onlineRegistry()
	if o.OfflineRevocation {
		reg, err = offlineRegistry()
	}
	if err != nil {
		return fmt.Errorf("building lint registry: %w", err)
	}
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto cannot parse it: %v", ErrLint, err)
	}
	rs := zlint.LintCertificateEx(c, reg)
	if !rs.WarningsPresent && !rs.ErrorsPresent && !rs.FatalsPresent {
		return nil
	}
	var bad []string
	for name, r := range rs.Results {
		if r.Status >= lint.Warn {
			s := name
			if r.Details != "" {
				s += " (" + r.Details + ")"
			}
			bad = append(bad, s)
		}
	}
	sort.Strings(bad)
	return fmt.Errorf("%w: %s", ErrLint, strings.Join(bad, "; "))
}
