#!/usr/bin/env bash
# `make run`: starts the control server on an embedded SQLite store in
# $DATA. On first run it creates there a CA, the server's certificate and
# the first admin's certificate; it prints where they are and the next
# steps (enroll a device, approve it, collect the certificate, fetch the
# CRL), then serves until Ctrl-C.
#
# test/e2e TestRunScript runs this script and then every numbered step it
# prints, as a newcomer copies them into a second terminal.
set -euo pipefail
BIN=${BIN:-bin/portcullis}
DATA=${DATA:-./portcullis-data}
LISTEN=${LISTEN:-127.0.0.1:8443}
PUBLIC=${PUBLIC:-127.0.0.1:8080}
exec "$BIN" server --data "$DATA" --listen "$LISTEN" --public-listen "$PUBLIC"
