//go:build windows

package pki

// LintAvailable reports whether this build lints before it signs: not on
// Windows, where zcrypto (zlint's parser) does not build. Windows binaries
// are for the agent; run the CA on Linux or macOS.
const LintAvailable = false

// LintDER does nothing on Windows; see LintAvailable.
func LintDER(der []byte, o LintOptions) error { return nil }
