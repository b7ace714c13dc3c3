#!/usr/bin/env bash
# Tunnel benchmark: `portcullis tunnel` against stunnel4 and nginx's stream
# module (ssl_verify_client on), with two baselines, raw TCP (no proxy) and
# Go crypto/tls (no proxy), all in the same run on loopback. Called by
# scripts/bench.sh after the CA part (`make bench`); runs alone too.
# docs/benchmarks.md says how each figure is measured.
#
# The load generator and the proxies share the cores, so compare ratios
# within one run; the proxies' own CPU (utime+stime) and RSS come from
# /proc/PID/{stat,status}, summed over the process tree (nginx workers).
#
# BENCHTIME (default 5s) is the length of each timed point, run in ROUNDS
# (default 2) slices (the X25519-only echo pattern in at least 3);
# IDLE_COUNTS (default "1000 5000") the idle sizes; KEEP=1 keeps the work
# directory (configs, logs, records.jsonl).
#
# The kept-connection echo runs in three patterns (docs/benchmarks.md, "Two
# latency patterns"): back to back with Go's default key exchanges; the
# client offering X25519 only in 3 rounds (an independent harness's
# pattern); and with 1 ms between requests.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BIN=${BIN:-bin/portcullis}
BT=${BENCHTIME:-5s}
[[ $BT =~ ^[0-9]+(\.[0-9]+)?(ms|s|m)$ ]] || BT=5s # BENCHTIME=100x is for go test
# Each point runs in ROUNDS slices of BENCHTIME/ROUNDS, the targets taking
# turns, so that load from elsewhere on the machine falls on all of them.
ROUNDS=${ROUNDS:-2}
NGINX_STREAM=${NGINX_STREAM:-/usr/lib/nginx/modules/ngx_stream_module.so}
IDLE_COUNTS=${IDLE_COUNTS:-"1000 5000"}

fail() { echo "bench-tunnel: $*" >&2; exit 1; }
command -v stunnel4 >/dev/null || fail "stunnel4 is missing: apt-get install -y stunnel4"
command -v nginx >/dev/null || fail "nginx is missing: apt-get install -y nginx libnginx-mod-stream"
[ -f "$NGINX_STREAM" ] || fail "$NGINX_STREAM is missing: apt-get install -y libnginx-mod-stream"
command -v ss >/dev/null || fail "ss is missing: apt-get install -y iproute2"
[ -r /proc/self/stat ] || fail "needs Linux /proc"

# 5,000 idle connections: 10,000 descriptors in the proxy, 5,000 in the
# load generator and as many in the backend, each its own process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 12000 ] ||
	fail "ulimit -n is $(ulimit -n); the idle test needs 12000 (raise the hard limit)"

NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=65536

T=$(mktemp -d "${TMPDIR:-/tmp}/bench-tunnel.XXXXXX")
declare -A PID=() PORT=()
STARTED=()
cleanup() {
	local p
	for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-0}" = 1 ]; then echo "bench-tunnel: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== tunnel: building $BIN and the load generator" >&2
if command -v make >/dev/null; then make --no-print-directory -s bin GO="$GO" BIN="$BIN"; else CGO_ENABLED=0 $GO build -trimpath -o "$BIN" ./cmd/portcullis; fi
$GO build -o "$T/loadgen" ./test/bench/loadgen
LG=$T/loadgen

# ---- PKI: a throwaway CA per key type, a server and a client certificate
mkca() {
	local dir=$T/ca-$1
	{
		"$BIN" ca init --dir "$dir" --no-passphrase --key-type "$1"
		"$BIN" ca issue server localhost --dir "$dir" --dns localhost --ip 127.0.0.1
		"$BIN" ca issue client bench --dir "$dir"
	} >"$T/ca-$1.log" 2>&1 || { cat "$T/ca-$1.log" >&2; fail "creating the $1 CA"; }
}
mkca p256
mkca rsa2048
# Files of one CA: server chain and key, client chain and key, root.
cafiles() {
	local d=$T/ca-$1
	echo "([scrt]=$d/issued/localhost.chain.crt [skey]=$d/private/localhost.key [ccrt]=$d/issued/bench.chain.crt [ckey]=$d/private/bench.key [ca]=$d/ca.crt)"
}
eval "declare -A EC=$(cafiles p256) RSA=$(cafiles rsa2048)"
TLS_EC=(-cert "${EC[ccrt]}" -key "${EC[ckey]}" -cacert "${EC[ca]}")
TLS_RSA=(-cert "${RSA[ccrt]}" -key "${RSA[ckey]}" -cacert "${RSA[ca]}")

# ---- processes
# start NAME CMD...: run in the background, output to $T/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$T/$name.log" 2>&1 &
	PID[$name]=$!
	STARTED+=("$!")
}
# stop NAME: end it and forget its PID, so that the exit trap can never
# signal a PID the system has since given to another process.
stop() {
	local p=${PID[$1]} q keep=()
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for q in "${STARTED[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
	STARTED=("${keep[@]}")
}
# ready NAME PORT: wait until NAME listens on PORT, or fail with its log.
ready() {
	local i
	for i in $(seq 200); do
		kill -0 "${PID[$1]}" 2>/dev/null || { tail -20 "$T/$1.log" >&2; fail "$1 exited"; }
		ss -ltnH "sport = :$2" | grep -q . && return 0
		sleep 0.05
	done
	tail -20 "$T/$1.log" >&2
	fail "$1 does not listen on $2"
}
# newports NAME...: a free loopback port for each name, all held at once
# while being picked so that they differ.
newports() {
	local n i=0 ps
	read -r -a ps <<<"$("$LG" ports -n $#)"
	for n in "$@"; do PORT[$n]=${ps[i++]}; done
}

# ---- /proc: CPU ticks and RSS of named processes and their children
tree() {
	local p=$1 c
	echo "$p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree "$c"; done
}
cpu_ticks() { # NAME...: utime+stime, in ticks
	local sum=0 n p s f
	for n in "$@"; do
		for p in $(tree "${PID[$n]}"); do
			s=$(cat /proc/"$p"/stat 2>/dev/null) || continue
			s=${s##*) } # fields from 3 on: the command name may hold spaces
			read -r -a f <<<"$s"
			sum=$((sum + f[11] + f[12]))
		done
	done
	echo "$sum"
}
rss_kb() { # NAME...: VmRSS summed, in KiB
	local sum=0 n p v
	for n in "$@"; do
		for p in $(tree "${PID[$n]}"); do
			v=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null) || true
			sum=$((sum + ${v:-0}))
		done
	done
	echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

# ---- backends
newports sink echo tls-sink tls-echo tls-rsa
start sink "$LG" sink -listen "127.0.0.1:${PORT[sink]}"
start echo "$LG" echod -listen "127.0.0.1:${PORT[echo]}"
start tls-sink "$LG" tlsecho -sink -listen "127.0.0.1:${PORT[tls-sink]}" -cert "${EC[scrt]}" -key "${EC[skey]}" -cacert "${EC[ca]}"
start tls-echo "$LG" tlsecho -listen "127.0.0.1:${PORT[tls-echo]}" -cert "${EC[scrt]}" -key "${EC[skey]}" -cacert "${EC[ca]}"
start tls-rsa "$LG" tlsecho -listen "127.0.0.1:${PORT[tls-rsa]}" -cert "${RSA[scrt]}" -key "${RSA[skey]}" -cacert "${RSA[ca]}"

# ---- proxy configurations
# portcullis: one process per service, as `tunnel server` takes flags.
pc_server() { # NAME PORT TARGETPORT CA
	local -n c=$4
	start "$1" "$BIN" tunnel server --listen "127.0.0.1:$2" --target "127.0.0.1:$3" \
		--cert "${c[scrt]}" --key "${c[skey]}" --cacert "${c[ca]}" --allow-all
}
pc_client() { # NAME PORT TARGETPORT [FLAGS...]
	start "$1" "$BIN" tunnel client --listen "127.0.0.1:$2" --target "127.0.0.1:$3" \
		--cert "${EC[ccrt]}" --key "${EC[ckey]}" --cacert "${EC[ca]}" "${@:4}"
}
# stunnel: one process, a section per service. SECTIONS is "name:port:target:CA".
stunnel_conf() { # NAME DEBUG SECTIONS...
	local name=$1 debug=$2 s sec port tgt ca
	shift 2
	printf 'foreground = quiet\nsyslog = no\npid =\ndebug = %s\noutput = %s\n' "$debug" "$T/$name.out" >"$T/$name.conf"
	for s in "$@"; do
		IFS=: read -r sec port tgt ca <<<"$s"
		local -n c=$ca
		printf '[%s]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\nCAfile = %s\nverifyChain = yes\n' \
			"$sec" "$port" "$tgt" "${c[ca]}" >>"$T/$name.conf"
		if [[ $sec == c-* ]]; then # client mode, towards a stunnel server
			printf 'client = yes\ncert = %s\nkey = %s\ncheckHost = localhost\n' "${c[ccrt]}" "${c[ckey]}" >>"$T/$name.conf"
		else
			printf 'cert = %s\nkey = %s\nrequireCert = yes\n' "${c[scrt]}" "${c[skey]}" >>"$T/$name.conf"
		fi
		unset -n c
	done
}
# nginx: master + one worker per core, stream module, own prefix, pid and
# logs. The access log (one line per connection, as portcullis and stunnel
# log) records $ssl_session_reused for the chain's resumption count.
nginx_conf() { # NAME SERVERS... ("port:target:CA" server side, "c:port:target" client side)
	local name=$1 s port tgt ca
	shift
	mkdir -p "$T/$name"
	cat >"$T/$name.conf" <<EOF
load_module $NGINX_STREAM;
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile $NOFILE;
pid $T/$name.pid;
error_log $T/$name.err warn;
events { worker_connections 12000; }
stream {
    log_format bench '\$remote_addr \$server_port \$bytes_received \$bytes_sent \$session_time reused=\$ssl_session_reused';
    access_log $T/$name.access bench;
    ssl_protocols TLSv1.2 TLSv1.3;
    proxy_ssl_protocols TLSv1.2 TLSv1.3;
EOF
	for s in "$@"; do
		if [[ $s == c:* ]]; then
			IFS=: read -r _ port tgt <<<"$s"
			cat >>"$T/$name.conf" <<EOF
    server {
        listen 127.0.0.1:$port;
        proxy_pass 127.0.0.1:$tgt;
        proxy_ssl on;
        proxy_ssl_certificate ${EC[ccrt]};
        proxy_ssl_certificate_key ${EC[ckey]};
        proxy_ssl_trusted_certificate ${EC[ca]};
        proxy_ssl_verify on;
        proxy_ssl_verify_depth 2;
        proxy_ssl_name localhost;
        proxy_ssl_session_reuse on;
    }
EOF
		else
			IFS=: read -r port tgt ca <<<"$s"
			local -n c=$ca
			cat >>"$T/$name.conf" <<EOF
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate ${c[scrt]};
        ssl_certificate_key ${c[skey]};
        ssl_client_certificate ${c[ca]};
        ssl_verify_client on;
        ssl_verify_depth 2;
        proxy_pass 127.0.0.1:$tgt;
    }
EOF
			unset -n c
		fi
	done
	echo "}" >>"$T/$name.conf"
}
nginx_start() { start "$1" nginx -p "$T/$1" -e "$T/$1.err" -c "$T/$1.conf"; }

# ---- the proxies under test, and the chain (client mode → server mode)
newports pc-sink pc-echo pc-rsa st-sink st-echo st-rsa ng-sink ng-echo ng-rsa \
	pcc-sink pcc-echo pcc-echox stc-sink stc-echo ngc-sink ngc-echo
pc_server pc-sink "${PORT[pc-sink]}" "${PORT[sink]}" EC
pc_server pc-echo "${PORT[pc-echo]}" "${PORT[echo]}" EC
pc_server pc-rsa "${PORT[pc-rsa]}" "${PORT[echo]}" RSA
pc_client pcc-sink "${PORT[pcc-sink]}" "${PORT[pc-sink]}"
pc_client pcc-echo "${PORT[pcc-echo]}" "${PORT[pc-echo]}"
# The chain of the X25519-only pattern: the load generator speaks plaintext
# to the client-mode proxy, so the proxies' own hop offers X25519 only
# (stunnel and nginx, OpenSSL 3.0, pick X25519 anyway).
pc_client pcc-echox "${PORT[pcc-echox]}" "${PORT[pc-echo]}" --curves x25519
stunnel_conf st notice "sink:${PORT[st-sink]}:${PORT[sink]}:EC" "echo:${PORT[st-echo]}:${PORT[echo]}:EC" "rsa:${PORT[st-rsa]}:${PORT[echo]}:RSA"
# info: stunnel logs "previous session reused" only at that level.
stunnel_conf stc info "c-sink:${PORT[stc-sink]}:${PORT[st-sink]}:EC" "c-echo:${PORT[stc-echo]}:${PORT[st-echo]}:EC"
start st stunnel4 "$T/st.conf"
start stc stunnel4 "$T/stc.conf"
nginx_conf ng "${PORT[ng-sink]}:${PORT[sink]}:EC" "${PORT[ng-echo]}:${PORT[echo]}:EC" "${PORT[ng-rsa]}:${PORT[echo]}:RSA"
nginx_conf ngc "c:${PORT[ngc-sink]}:${PORT[ng-sink]}" "c:${PORT[ngc-echo]}:${PORT[ng-echo]}"
nginx_start ng
nginx_start ngc
for n in sink echo tls-sink tls-echo tls-rsa; do ready "$n" "${PORT[$n]}"; done
for n in pc-sink pc-echo pc-rsa pcc-sink pcc-echo pcc-echox; do ready "$n" "${PORT[$n]}"; done
for n in st-sink st-echo st-rsa; do ready st "${PORT[$n]}"; done
for n in stc-sink stc-echo; do ready stc "${PORT[$n]}"; done
for n in ng-sink ng-echo ng-rsa; do ready ng "${PORT[$n]}"; done
for n in ngc-sink ngc-echo; do ready ngc "${PORT[$n]}"; done

# Where each target's sink/echo/rsa service is, and whose CPU to count.
declare -A ADDR=() PROCS=()
for k in sink echo; do
	ADDR[raw:$k]=${PORT[$k]} PROCS[raw:$k]=$k
	ADDR[gotls:$k]=${PORT[tls-$k]} PROCS[gotls:$k]=tls-$k
	ADDR[portcullis:$k]=${PORT[pc-$k]} PROCS[portcullis:$k]=pc-$k
	ADDR[stunnel:$k]=${PORT[st-$k]} PROCS[stunnel:$k]=st
	ADDR[nginx:$k]=${PORT[ng-$k]} PROCS[nginx:$k]=ng
	ADDR[chain-portcullis:$k]=${PORT[pcc-$k]} PROCS[chain-portcullis:$k]="pcc-$k pc-$k"
	ADDR[chain-stunnel:$k]=${PORT[stc-$k]} PROCS[chain-stunnel:$k]="stc st"
	ADDR[chain-nginx:$k]=${PORT[ngc-$k]} PROCS[chain-nginx:$k]="ngc ng"
done
# echox: the echo service, reached through the X25519-only chain.
for t in raw gotls portcullis stunnel nginx chain-stunnel chain-nginx; do
	ADDR[$t:echox]=${ADDR[$t:echo]} PROCS[$t:echox]=${PROCS[$t:echo]}
done
ADDR[chain-portcullis:echox]=${PORT[pcc-echox]} PROCS[chain-portcullis:echox]="pcc-echox pc-echo"
ADDR[gotls:rsa]=${PORT[tls-rsa]} PROCS[gotls:rsa]=tls-rsa
ADDR[portcullis:rsa]=${PORT[pc-rsa]} PROCS[portcullis:rsa]=pc-rsa
ADDR[stunnel:rsa]=${PORT[st-rsa]} PROCS[stunnel:rsa]=st
ADDR[nginx:rsa]=${PORT[ng-rsa]} PROCS[nginx:rsa]=ng

REC=$T/records.jsonl
: >"$REC"
# record TARGET SCENARIO CPU0 CPU1 RSS RSS0 EXTRA JSON: one line for `loadgen report`.
record() {
	local res=$8
	[[ $res == \{* ]] || res='{"error":"no result from loadgen"}'
	printf '{"target":"%s","scenario":"%s","clk_tck":%s,"cpu_ticks":%s,"rss_kb":%s,"rss0_kb":%s%s,"res":%s}\n' \
		"$1" "$2" "$CLK_TCK" $(($4 - $3)) "$5" "$6" "$7" "$res" >>"$REC"
	printf '  %-11s %-19s cpu=%5.2fs rss=%7s KiB %s\n' "$1" "$2" "$(awk "BEGIN{print ($4-$3)/$CLK_TCK}")" "$5" "$res" >&2
}
# point TARGET SCENARIO KIND LOADGEN-ARGS...: one measurement, TLS flags
# added by target.
point() {
	local target=$1 scen=$2 kind=$3 procs c0 c1 out extra=""
	shift 3
	local tls=("${TLS_EC[@]}")
	[ "$kind" = rsa ] && tls=("${TLS_RSA[@]}")
	[[ $target == raw || $target == chain-* ]] && tls=(-plain)
	procs=${PROCS[$target:$kind]}
	# shellcheck disable=SC2086 # procs is a list of names
	c0=$(cpu_ticks $procs)
	[[ $scen == chain-conns ]] && local r0=($(resumed "$target"))
	out=$("$LG" "$1" -target "127.0.0.1:${ADDR[$target:$kind]}" "${tls[@]}" "${@:2}" 2>"$T/loadgen.err") ||
		out="{\"error\":\"$(tail -1 "$T/loadgen.err" | tr -d '"\\')\"}"
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $procs)
	if [[ $scen == chain-conns ]]; then
		sleep 0.2 # the proxies log a connection when it ends
		local r1=($(resumed "$target"))
		extra=$(printf ',"resumed":[%d,%d]' $((r1[0] - r0[0])) $((r1[1] - r0[1])))
	fi
	# shellcheck disable=SC2086
	record "${target#chain-}" "$scen" "$c0" "$c1" "$(rss_kb $procs)" 0 "$extra" "$out"
	sleep 0.2
}
# resumed TARGET: "resumed total" upstream handshakes of the chain so far,
# from each server side's (or stunnel client's) per-connection log.
resumed() {
	local r t
	case $1 in
	chain-portcullis)
		r=$(grep -c 'resumed=true' "$T/pc-echo.log" || true)
		t=$(grep -c 'msg=connection' "$T/pc-echo.log" || true)
		;;
	chain-stunnel)
		r=$(grep -c 'previous session reused' "$T/stc.out" || true)
		t=$(grep -cE 'previous session reused|new session negotiated' "$T/stc.out" || true)
		;;
	chain-nginx)
		r=$(grep -c 'reused=r' "$T/ng.access" || true)
		t=$(wc -l <"$T/ng.access")
		;;
	esac
	echo "$r $t"
}
# scenario NAME KIND "TARGETS" LOADGEN-ARGS...: ROUNDS rounds (SROUNDS if
# set), each target in turn for BENCHTIME/rounds; `loadgen report` merges
# the rounds.
scenario() {
	local scen=$1 kind=$2 targets=$3 r t rounds=${SROUNDS:-$ROUNDS} slice
	shift 3
	slice=$(awk -v d="$BT" -v r="$rounds" 'BEGIN {
		u = d; sub(/^[0-9.]+/, "", u); v = d + 0
		ms = v * (u == "ms" ? 1 : u == "m" ? 60000 : 1000)
		printf "%dms", ms / r }')
	for r in $(seq "$rounds"); do
		for t in $targets; do point "$t" "$scen" "$kind" "$@" -d "$slice"; done
	done
}
# The other request/response pattern (docs/benchmarks.md, "Two latency
# patterns"): the client offers X25519 only, at least 3 rounds.
R3=$((ROUNDS > 3 ? ROUNDS : 3))
TLS_TARGETS="gotls portcullis stunnel nginx"
ALL_TARGETS="raw $TLS_TARGETS"
CHAIN_TARGETS="chain-portcullis chain-stunnel chain-nginx"

echo "== tunnel: $(nproc) cores, $(uname -r), $($GO version | cut -d' ' -f3), $(stunnel4 -version 2>&1 | grep -m1 -o 'stunnel [0-9.]*'), $(nginx -v 2>&1 | cut -d' ' -f3), $(openssl version | cut -d' ' -f1-2); BENCHTIME=$BT in $ROUNDS rounds; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
t0=$(date +%s)
scenario bulk1 sink "$ALL_TARGETS" bulk -conns 1
scenario bulk8 sink "$ALL_TARGETS" bulk -conns 8
scenario hs-ecdsa-8 echo "$ALL_TARGETS" handshake -c 8
scenario hs-ecdsa-64 echo "$ALL_TARGETS" handshake -c 64
scenario hs-ecdsa-64-x25519 echo "$TLS_TARGETS" handshake -c 64 -curves x25519
scenario hs-rsa-8 rsa "$TLS_TARGETS" handshake -c 8
scenario hs-rsa-64 rsa "$TLS_TARGETS" handshake -c 64
scenario echo-kept echo "$ALL_TARGETS" echo -size 1024
SROUNDS=$R3 scenario echo-kept-x25519 echox "$ALL_TARGETS" echo -size 1024 -curves x25519
scenario echo-kept-gap echo "$ALL_TARGETS" echo -size 1024 -think 1ms
scenario echo-new echo "$ALL_TARGETS" echo -size 1024 -new-conn
scenario chain-bulk8 sink "$CHAIN_TARGETS" bulk -conns 8
scenario chain-echo-kept echo "$CHAIN_TARGETS" echo -size 1024
SROUNDS=$R3 scenario chain-echo-kept-x25519 echox "$CHAIN_TARGETS" echo -size 1024
scenario chain-echo-kept-gap echo "$CHAIN_TARGETS" echo -size 1024 -think 1ms
scenario chain-echo-new echo "$CHAIN_TARGETS" echo -size 1024 -new-conn
scenario chain-conns echo "$CHAIN_TARGETS" handshake -c 8
for n in pc-sink pc-echo pc-rsa pcc-sink pcc-echo pcc-echox st stc ng ngc tls-sink tls-rsa; do stop "$n"; done

# ---- idle: a fresh proxy each time, RSS before and with N idle mTLS
# connections (each proven by a 1-byte round trip to the echo backend).
idle() { # TARGET N
	local target=$1 n=$2 name=idle-$1 rss0 rss c0 c1 out i
	newports "$name"
	local port=${PORT[$name]}
	case $target in
	gotls) start "$name" "$LG" tlsecho -listen "127.0.0.1:$port" -cert "${EC[scrt]}" -key "${EC[skey]}" -cacert "${EC[ca]}" ;;
	portcullis) pc_server "$name" "$port" "${PORT[echo]}" EC ;;
	stunnel) stunnel_conf "$name" notice "echo:$port:${PORT[echo]}:EC" && start "$name" stunnel4 "$T/$name.conf" ;;
	nginx) nginx_conf "$name" "$port:${PORT[echo]}:EC" && nginx_start "$name" ;;
	esac
	ready "$name" "$port"
	sleep 0.5
	rss0=$(rss_kb "$name") c0=$(cpu_ticks "$name")
	start idle-client "$LG" idle -n "$n" -target "127.0.0.1:$port" "${TLS_EC[@]}"
	for i in $(seq 1200); do
		grep -q '"op":"idle"' "$T/idle-client.log" && break
		kill -0 "${PID[idle-client]}" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1 # let the proxy settle (buffers, goroutines, threads)
	rss=$(rss_kb "$name") c1=$(cpu_ticks "$name")
	out=$(grep -m1 '"op":"idle"' "$T/idle-client.log" || true)
	record "$target" "idle-$n" "$c0" "$c1" "$rss" "$rss0" "" "$out"
	stop idle-client
	stop "$name"
}
for n in $IDLE_COUNTS; do
	for t in $TLS_TARGETS; do idle "$t" "$n"; done
done

echo "== tunnel: $(date -u +%Y-%m-%dT%H:%MZ), $(($(date +%s) - t0)) s of measurements; load $(cut -d' ' -f1-3 /proc/loadavg); TIME-WAIT sockets now: $(ss -tanH state time-wait | wc -l)" >&2
echo
"$LG" report <"$REC"
