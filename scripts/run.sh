#!/usr/bin/env bash
# `make run`: on first run, creates a demo CA in $DATA (a root, an
# intermediate, a server certificate for localhost and a device
# certificate), then prints what to do next. The control server that will
# serve it arrives in a later release; until then this is the CA alone.
#
# test/e2e TestRunScript runs the printed steps as a newcomer copies them:
# each unindented heading starts a step made of the indented lines under
# it, and a heading that says "keeps running" is a server it starts in the
# background (waiting for its 127.0.0.1 --listen/--status/LocalAddr).
set -euo pipefail
BIN=${BIN:-bin/portcullis}
DATA=${DATA:-./portcullis-data}
PASS="$DATA/passphrase"

if [ ! -f "$DATA/ca.yaml" ]; then
	mkdir -p "$DATA"
	if [ ! -f "$PASS" ]; then
		# A random passphrase in a 0600 file keeps the demo non-interactive.
		# In production keep it out of the CA directory (a secret manager,
		# or type it at the prompt).
		(umask 077; head -c 24 /dev/urandom | base64 > "$PASS")
	fi
	"$BIN" ca init --dir "$DATA" --passphrase-file "$PASS" \
		--root-cn "Portcullis Demo Root CA" --intermediate-cn "Portcullis Demo Intermediate CA" --org "Portcullis Demo"
	"$BIN" ca issue server localhost --dir "$DATA" --passphrase-file "$PASS" --dns localhost --ip 127.0.0.1
	"$BIN" ca issue device demo-laptop --dir "$DATA" --passphrase-file "$PASS"
else
	echo "Demo CA already in $DATA (delete the directory to start over)."
fi
echo
"$BIN" ca list --dir "$DATA"
cat <<EOT

Next steps (the CA passphrase is in $PASS):
  $BIN ca issue client alice --dir $DATA --passphrase-file $PASS --email alice@example.com
  $BIN ca revoke alice --dir $DATA --passphrase-file $PASS --reason keyCompromise
  (umask 077; openssl rand -base64 24 > $DATA/p12.pass)   # the PKCS#12 password, never the CA passphrase
  $BIN ca export demo-laptop --dir $DATA --p12 --password-file $DATA/p12.pass
  openssl verify -CAfile $DATA/ca.crt -untrusted $DATA/intermediate.crt $DATA/issued/localhost.crt

An mTLS tunnel in front of a local app that only fleet devices may reach.
In one terminal, a stand-in app on 127.0.0.1:8080 (keeps running; any HTTP server will do):
  perl -MIO::Socket::INET -e '\$SIG{PIPE} = "IGNORE";
    \$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:8080", Listen => 8, ReuseAddr => 1) or die "\$!\\n";
    while (\$c = \$s->accept) { while (<\$c>) { last if /^\\r?\$/ } print \$c "HTTP/1.0 200 OK\\r\\n\\r\\nhello from the backend\\n"; close \$c }'
In a second terminal, the tunnel in front of it (keeps running):
  $BIN tunnel server --listen 127.0.0.1:8443 --target 127.0.0.1:8080 --status 127.0.0.1:9090 \\
    --cert $DATA/issued/localhost.chain.crt --key $DATA/private/localhost.key --cacert $DATA/ca-bundle.crt \\
    --allow-uri 'spiffe://portcullis.internal/device/*' --crl $DATA/crl.pem
In a third, a fleet device's request through the tunnel:
  curl -fsS --cacert $DATA/ca.crt --cert $DATA/issued/demo-laptop.chain.crt --key $DATA/private/demo-laptop.key https://localhost:8443/

The control server, agent and gateway are not built yet; see README.md.
EOT
