#!/bin/sh
# Regenerates the CSR fixtures of badinput_test.go with openssl 3. The
# private keys are thrown away: the tests only need requests the CA must
# refuse (or, for host.csr, a good one to damage).
set -eu
cd "$(dirname "$0")"
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null"
# A good request, damaged by the tests (truncated, bad signature).
openssl req -new $ec -subj /CN=host.example.com -addext subjectAltName=DNS:host.example.com -out host.csr
# Asks for a CA certificate.
openssl req -new $ec -subj /CN=sub.example.com -addext subjectAltName=DNS:sub.example.com \
	-addext basicConstraints=critical,CA:TRUE -out ca-true.csr
# A name outside the name policy the test sets (dns allow .corp.example.com).
openssl req -new $ec -subj /CN=evil.example.org -addext subjectAltName=DNS:evil.example.org -out evil.csr
# A weak key.
openssl req -new -newkey rsa:1024 -nodes -keyout /dev/null -subj /CN=weak.example.com -out rsa1024.csr
# PEM armour around bytes that are not a CSR.
{ echo "-----BEGIN CERTIFICATE REQUEST-----"; printf 'this is not a PKCS#10 request' | base64; echo "-----END CERTIFICATE REQUEST-----"; } > malformed.csr
