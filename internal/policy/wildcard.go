package policy

import (
	"errors"
	"fmt"
	"strings"
)

// A Wildcard is a compiled pattern of segments split by a separator byte,
// with ghostunnel's wildcard semantics (ghostunnel wildcard/matcher.go,
// the syntax of --allow-uri and --verify-uri):
//
//   - A literal segment matches itself, byte for byte.
//   - "*" as a whole segment matches exactly one non-empty segment.
//   - "**" as the last segment matches zero or more further segments,
//     empty ones included.
//   - Any other use of '*' ("a*", "a**b", "**" before the end) is an error,
//     as is an empty pattern.
//   - One trailing separator is optional, on the pattern and on the input:
//     "spiffe://corp/a" and "spiffe://corp/a/" are equivalent.
//
// Portcullis tightens two corners of ghostunnel's regular expression: "**"
// starts at a segment boundary ("a/**" matches "a" and "a/b" but not "ab"),
// and no wildcard matches '?' or '#', so in a URI a wildcard stays inside
// the path and never reaches into a query or fragment. Literal segments
// may still hold them.
//
// A Wildcard is immutable and safe for concurrent use.
type Wildcard struct {
	pattern string
	sep     byte
	// segs are the segments before any trailing "**"; "*" is the one-segment
	// wildcard (literal segments never contain '*').
	segs []string
	// rest is set when the pattern ended in "**".
	rest bool
	// fold compares literal segments ignoring ASCII case (DNS names).
	fold bool
}

// wildcardExcluded are the bytes no wildcard matches: the delimiters of a
// URI's query and fragment.
const wildcardExcluded = "?#"

// CompileWildcard compiles pattern, whose segments are split by sep. See
// [Wildcard] for the syntax.
func CompileWildcard(pattern string, sep byte) (*Wildcard, error) {
	if pattern == "" {
		return nil, errors.New("empty pattern")
	}
	if sep == '*' {
		return nil, errors.New(`the separator cannot be '*'`)
	}
	segs := strings.Split(trimSep(pattern, sep), string([]byte{sep}))
	w := &Wildcard{pattern: pattern, sep: sep}
	for i, seg := range segs {
		switch {
		case seg == "**" && i == len(segs)-1:
			w.rest = true
			segs = segs[:i]
		case seg == "**":
			return nil, errors.New(`"**" is allowed only as the last segment`)
		case seg == "*":
		case strings.Contains(seg, "*"):
			return nil, fmt.Errorf(`segment %q: a wildcard must be a whole segment, "*" or "**"`, seg)
		}
	}
	w.segs = segs
	return w, nil
}

// CompileDNS compiles a DNS name rule: a name ("api.example.com") or a
// wildcard whose leftmost label is "*" ("*.example.com"), which matches
// exactly one label, so not "example.com" and not "a.b.example.com".
// Matching ignores ASCII case and one trailing dot. A peer's own wildcard
// SAN is not expanded: it matches only a rule that matches its literal text.
func CompileDNS(pattern string) (*Wildcard, error) {
	if pattern == "" {
		return nil, errors.New("empty name")
	}
	name := trimSep(pattern, '.')
	if name == "*" {
		return nil, errors.New(`"*" needs a domain after it, as in "*.example.com"`)
	}
	if err := checkName(name, true); err != nil {
		return nil, err
	}
	return &Wildcard{pattern: pattern, sep: '.', segs: strings.Split(name, "."), fold: true}, nil
}

// checkName reports whether name (without a trailing dot) is a DNS name,
// with a leftmost "*" label when wild.
func checkName(name string, wild bool) error {
	if len(name) > 253 {
		return fmt.Errorf("name is %d bytes, longer than 253", len(name))
	}
	first := true
	for l := range strings.SplitSeq(name, ".") {
		if err := checkLabel(l, wild && first && l != name); err != nil {
			return err
		}
		first = false
	}
	return nil
}

// checkLabel reports whether l is a DNS label: letters, digits, '-' and '_'
// (which private names use), or "*" when wild.
func checkLabel(l string, wild bool) error {
	switch {
	case l == "":
		return errors.New("empty label")
	case l == "*" && wild:
		return nil
	case strings.Contains(l, "*"):
		return fmt.Errorf(`label %q: "*" is allowed only as the whole leftmost label`, l)
	case len(l) > 63:
		return fmt.Errorf("label %q is longer than 63 bytes", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q: invalid character %q", l, c)
		}
	}
	return nil
}

// Match reports whether s matches the pattern. It does not allocate.
func (w *Wildcard) Match(s string) bool {
	if w == nil {
		return false
	}
	rest, done := trimSep(s, w.sep), false
	for _, seg := range w.segs {
		if done {
			return false
		}
		var part string
		if i := strings.IndexByte(rest, w.sep); i >= 0 {
			part, rest = rest[:i], rest[i+1:]
		} else {
			part, rest, done = rest, "", true
		}
		if !w.matchSegment(seg, part) {
			return false
		}
	}
	if !w.rest {
		return done
	}
	return done || !strings.ContainsAny(rest, wildcardExcluded)
}

func (w *Wildcard) matchSegment(seg, part string) bool {
	switch {
	case seg == "*":
		return part != "" && !strings.ContainsAny(part, wildcardExcluded)
	case w.fold:
		return equalFoldASCII(seg, part)
	default:
		return seg == part
	}
}

// String returns the pattern as given.
func (w *Wildcard) String() string {
	if w == nil {
		return ""
	}
	return w.pattern
}

// trimSep drops one trailing separator, unless s is only that separator.
func trimSep(s string, sep byte) string {
	if len(s) > 1 && s[len(s)-1] == sep {
		return s[:len(s)-1]
	}
	return s
}

// equalFoldASCII is strings.EqualFold for ASCII only: Unicode folding would
// let "\u212a" (Kelvin sign) match "k", which no DNS name should.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
