#!/usr/bin/env bash
# Installs the Debian packages the tests use as peers, if any is missing.
# Idempotent and quiet when everything is there. Needs root and apt-get to
# install; without them it lists what is missing and lets the tests decide
# (under CI=true a test whose peer is missing fails).
set -euo pipefail

PACKAGES=(curl openssl easy-rsa ca-certificates stunnel4 nginx libnginx-mod-stream)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: missing ${missing[*]} (run make test as root on Debian to install them)" >&2
	exit 0
fi
echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/portcullis-apt.log 2>&1; then
	apt-get update -q >>/tmp/portcullis-apt.log 2>&1
	apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/portcullis-apt.log 2>&1 || {
		tail -20 /tmp/portcullis-apt.log >&2; exit 1; }
fi
