#!/usr/bin/env bash
# `make bench`: the benchmark suite, printed as tables: the CA here, then
# the tunnel against stunnel4 and nginx (scripts/bench-tunnel.sh). Figures
# are from one run on a shared machine: compare ratios within a run, not
# absolute times across runs. BENCHTIME (default 3s for the CA, 5s per
# tunnel point) and COUNT (default 1, CA only) tune it; BENCH_ONLY=ca
# skips the tunnel part.
set -euo pipefail
GO=${GO:-go}
BENCHTIME=${BENCHTIME:-3s}
COUNT=${COUNT:-1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== CA (internal/ca): $(nproc) cores, $(uname -m), $($GO version | cut -d' ' -f3)"
$GO test -run '^$' -bench 'BenchmarkIssue|BenchmarkLint' -benchtime "$BENCHTIME" -count "$COUNT" ./internal/ca >"$out"
$GO test -run '^$' -bench 'BenchmarkCRL$' -benchtime 5x -count "$COUNT" ./internal/ca >>"$out"

awk '
/^Benchmark/ {
	name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	ns=""; rate=""; mib=""
	for (i=2; i<=NF; i++) {
		if ($(i+1)=="ns/op") ns=$i
		if ($(i+1)=="certs/s") rate=$i
		if ($(i+1)=="MiB") mib=$i
	}
	rows[++n]=sprintf("| %-28s | %12s | %10.2f ms | %s", name, rate==""?"":sprintf("%.0f", rate), ns/1e6, mib==""?"":mib " MiB CRL")
}
END {
	print "| benchmark                    |      certs/s |    time per op | note"
	print "|------------------------------|--------------|----------------|-----"
	for (i=1; i<=n; i++) print rows[i]
}' "$out"

[ "${BENCH_ONLY:-}" = ca ] && exit 0
echo
"$(dirname "$0")/bench-tunnel.sh"
