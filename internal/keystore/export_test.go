package keystore

import "testing"

// LowerKDFLimits sets the KDF caps for tb's duration, so a test or a fuzz
// input reaches the KDF paths and the cap errors without seconds of work.
func LowerKDFLimits(tb testing.TB, iterations, scryptMemory, scryptWork int) {
	old := limits
	limits = kdfLimits{iterations, scryptMemory, scryptWork}
	tb.Cleanup(func() { limits = old })
}

// ErrPanicked marks an error that was a library panic.
var ErrPanicked = errPanicked
