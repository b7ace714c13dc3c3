package policy_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/policy"
)

// wildcardMatches is the matcher's table: ghostunnel's own cases
// (wildcard/matcher_test.go) plus Portcullis's tightened corners. It also
// seeds FuzzWildcard.
var wildcardMatches = []struct {
	pattern string
	sep     byte
	in      string
	want    bool
}{
	// "*" is one non-empty segment.
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/laptop-1", true},
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/laptop-1/", true},
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/", false},
	{"spiffe://corp/device/*", '/', "spiffe://corp/device//", false},
	{"spiffe://corp/device/*", '/', "spiffe://corp/device", false},
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/a/b", false},
	{"spiffe://corp/device/*", '/', "spiffe://corp/devicex/a", false},
	{"spiffe://corp/device/*", '/', "spiffe://corp2/device/a", false},
	{"spiffe://corp/device/*", '/', "spiff://corp/device/a", false},
	{"spiffe://corp/*/bar", '/', "spiffe://corp//bar", false},
	{"spiffe://corp/*/bar", '/', "spiffe://corp/baz/bar/", true},
	{"spiffe://corp/*/bar", '/', "spiffe://corp/baz/barx", false},
	// Host wildcards are allowed, as in ghostunnel ("spiffe://*/*/bar").
	{"spiffe://*/device/*", '/', "spiffe://corp/device/a", true},
	{"spiffe://*/device/*", '/', "spiffe:///device/a", false},
	// Percent-encoding is compared as written: %2F is not a separator.
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/a%2Fb", true},
	{"spiffe://corp/a%20b", '/', "spiffe://corp/a%20b", true},
	{"spiffe://corp/a%20b", '/', "spiffe://corp/a b", false},
	{"spiffe://corp/a%20b", '/', "spiffe://corp/a%20B", false},
	// No wildcard reaches into a query or fragment; literals may hold them.
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/a?x=1", false},
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/a#f", false},
	{"spiffe://corp/device/*", '/', "spiffe://corp/device/?", false},
	{"spiffe://corp/device/**", '/', "spiffe://corp/device/a/b?x=1", false},
	{"spiffe://corp/device/**", '/', "spiffe://corp/device/a#f", false},
	{"spiffe://corp/x?y=1", '/', "spiffe://corp/x?y=1", true},
	{"spiffe://corp/x?y=1", '/', "spiffe://corp/x?y=2", false},
	// "**" at the end: zero or more segments, from a segment boundary.
	{"spiffe://corp/device/**", '/', "spiffe://corp/device", true},
	{"spiffe://corp/device/**", '/', "spiffe://corp/device/", true},
	{"spiffe://corp/device/**", '/', "spiffe://corp/device/a", true},
	{"spiffe://corp/device/**", '/', "spiffe://corp/device/a/b/c", true},
	{"spiffe://corp/device/**", '/', "spiffe://corp/device/a//b/", true},
	{"spiffe://corp/device/**", '/', "spiffe://corp/devicex", false},
	{"spiffe://corp/device/**", '/', "spiffe://corp/devic", false},
	{"spiffe://corp/*/bar/**", '/', "spiffe://corp/baz/bar/spam/eggs", true},
	{"spiffe://corp/*/bar/**", '/', "spiffe://corp//bar/spam", false},
	{"**", '/', "anything/at/all", true},
	{"**", '/', "", true},
	{"**", '/', "a?b", false},
	// One trailing separator is optional on either side, no more.
	{"spiffe://corp/x/", '/', "spiffe://corp/x", true},
	{"spiffe://corp/x", '/', "spiffe://corp/x/", true},
	{"spiffe://corp/x", '/', "spiffe://corp/x//", false},
	{"a//b", '/', "a//b", true},
	{"a//b", '/', "a/b", false},
	{"/", '/', "/", true},
	{"/", '/', "", false},
	// Regular expression characters are literal.
	{".+", '/', ".+", true},
	{".+", '/', "ab", false},
	{"spiffe://corp/./bar", '/', "spiffe://corp/x/bar", false},
	// Other separators: a DNS label with '.'.
	{"*.example.com", '.', "foo.example.com", true},
	{"*.example.com", '.', "a.b.example.com", false},
	{"*.example.com", '.', "example.com", false},
	{"*.example.com", '.', ".example.com", false},
	{"*.example.com", '.', "FOO.EXAMPLE.COM", false}, // case folding is CompileDNS's
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range wildcardMatches {
		t.Run(tc.pattern+" "+tc.in, func(t *testing.T) {
			w, err := policy.CompileWildcard(tc.pattern, tc.sep)
			if err != nil {
				t.Fatalf("CompileWildcard(%q, %q) = %v", tc.pattern, tc.sep, err)
			}
			if got := w.Match(tc.in); got != tc.want {
				t.Errorf("CompileWildcard(%q).Match(%q) = %v, want %v", tc.pattern, tc.in, got, tc.want)
			}
		})
	}
}

func TestCompileWildcardErrors(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		sep     byte
		want    string
	}{
		{"", '/', "empty pattern"},
		{"a**b", '/', `segment "a**b": a wildcard must be a whole segment`},
		{"test://foo*/asdf", '/', `segment "foo*"`},
		{"test://*foo/asdf", '/', `segment "*foo"`},
		{"spiffe://corp/a/***", '/', `segment "***"`},
		{"**/a", '/', `"**" is allowed only as the last segment`},
		{"spiffe://corp/**/x", '/', `"**" is allowed only as the last segment`},
		{"test://**/asdf", '/', `"**" is allowed only as the last segment`},
		{"**://foo/asdf", '/', `segment "**:"`},
		{"spiffe://corp/*?y=1", '/', `segment "*?y=1"`},
		{"a*b", '*', "the separator cannot be '*'"},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			w, err := policy.CompileWildcard(tc.pattern, tc.sep)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CompileWildcard(%q, %q) = %v, %v, want error containing %q", tc.pattern, tc.sep, w, err, tc.want)
			}
		})
	}
}

func TestCompileDNS(t *testing.T) {
	for _, tc := range []struct {
		pattern, in string
		want        bool
	}{
		{"*.example.com", "foo.example.com", true},
		{"*.example.com", "FOO.Example.COM", true},
		{"*.example.com", "foo.example.com.", true},
		{"*.Example.COM.", "foo.example.com", true},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "foo.example.org", false},
		{"*.example.com", "*.example.com", true}, // a wildcard SAN is only text
		{"api.example.com", "API.EXAMPLE.COM", true},
		{"api.example.com", "api.example.com.", true},
		{"api.example.com", "api.example.co", false},
		{"api.example.com", "*.example.com", false},
		{"k.example.com", "\u212a.example.com", false}, // no Unicode folding
		{"*.svc", "db.svc", true},
	} {
		t.Run(tc.pattern+" "+tc.in, func(t *testing.T) {
			w, err := policy.CompileDNS(tc.pattern)
			if err != nil {
				t.Fatalf("CompileDNS(%q) = %v", tc.pattern, err)
			}
			if got := w.Match(tc.in); got != tc.want {
				t.Errorf("CompileDNS(%q).Match(%q) = %v, want %v", tc.pattern, tc.in, got, tc.want)
			}
		})
	}
}

func TestCompileDNSErrors(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"", "empty name"},
		{"*", `"*" needs a domain after it`},
		{"*.", `"*" needs a domain after it`},
		{"foo*.example.com", `"*" is allowed only as the whole leftmost label`},
		{"a.*.example.com", `"*" is allowed only as the whole leftmost label`},
		{"**.example.com", `"*" is allowed only as the whole leftmost label`},
		{"example..com", "empty label"},
		{".", "empty label"},
		{"exa mple.com", "invalid character"},
		{"spiffe://corp", "invalid character"},
		{strings.Repeat("a", 64) + ".com", "longer than 63 bytes"},
		{strings.Repeat("a.", 127) + "com", "longer than 253"},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			w, err := policy.CompileDNS(tc.pattern)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CompileDNS(%q) = %v, %v, want error containing %q", tc.pattern, w, err, tc.want)
			}
		})
	}
}

func TestWildcardNil(t *testing.T) {
	var w *policy.Wildcard
	if w.Match("") || w.String() != "" {
		t.Errorf("nil Wildcard: Match = %v, String = %q, want false and empty", w.Match(""), w.String())
	}
}
