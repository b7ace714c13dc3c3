// Package e2e drives the built portcullis binary end to end against real
// peers: openssl (verify, crl, pkcs12, pkey, req, s_client), curl, Debian's
// easy-rsa and a Go mTLS server on 127.0.0.1. It holds tests only; TestMain
// builds the binary once, and every test works in its own temporary CA
// directory.
//
// Missing peers skip a test on a developer machine and fail it under
// CI=true (see internal/testpeer).
package e2e
