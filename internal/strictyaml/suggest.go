package strictyaml

import (
	"reflect"
	"strings"
)

// suggest returns the known key the user most likely meant by key, or "".
// Close spellings count ("target", "connect-timeout", "Targets"), and so
// does a flag-style key that belongs one level down: "allow_cn" is
// "allow.cn", as ghostunnel's --allow-cn suggests.
func suggest(key string, fields []field) string {
	norm := normalize(key)
	for _, f := range fields {
		if rest, ok := strings.CutPrefix(norm, f.key+"_"); ok {
			if sub := structFields(f.t); sub != nil {
				if _, ok := lookup(sub, rest); ok {
					return f.key + "." + rest
				}
			}
		}
	}
	limit := min(max(len(norm)/3, 1), 3)
	best, bestDist := "", limit+1
	for _, f := range fields {
		d := distance(norm, f.key)
		if d > limit && len(norm) >= 2 && strings.HasPrefix(f.key, norm) {
			d = limit // an abbreviation: "ca" for "cacert"
		}
		if d < bestDist {
			best, bestDist = f.key, d
		}
	}
	return best
}

// normalize folds the differences that are no spelling mistake: case, and
// flag-style dashes.
func normalize(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "-", "_")
}

// structFields lists the keys of t when it is a struct (or a pointer to
// one) that decodes key by key.
func structFields(t reflect.Type) []field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || custom(t) {
		return nil
	}
	return fieldsOf(t)
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each cost one.
func distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
