#!/usr/bin/env bash
# A short fuzz pass over every Fuzz* target in the module: each runs for
# $FUZZTIME on top of its seed corpus (which `go test` already replays).
set -euo pipefail
FUZZTIME=${FUZZTIME:-8s}
GO=${GO:-go}
n=0
for pkg in $($GO list ./...); do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' || true)
	for t in $targets; do
		echo "fuzz $pkg $t ($FUZZTIME)"
		$GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/portcullis-fuzz.log 2>&1 || {
			cat /tmp/portcullis-fuzz.log; exit 1; }
		n=$((n + 1))
	done
done
echo "fuzz: $n targets passed"
