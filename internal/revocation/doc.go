// Package revocation owns the revocation checking of peer certificates for
// the tunnel and the gateway: it loads CRLs from files or http(s) URLs,
// refreshes them on an interval or at their nextUpdate, asks the OCSP
// responder named in a leaf's AIA (with a bounded cache), and decides what a
// handshake gets when no fresh answer exists (fail-open or fail-closed).
//
// The hot path is [Checker.Check], called from tls.Config.VerifyConnection
// on every handshake: a CRL lookup is a lock-free read of an immutable
// snapshot and a map lookup by the serial's DER bytes. Everything that can
// lock everyone out (an expired, unloadable or rolled-back CRL, an OCSP
// responder that does not answer) is logged with the source and its
// consequence, counted in portcullis_revocation_* metrics and shown by
// [Checker.Status].
//
// Not supported, and rejected when a CRL says it needs them: delta CRLs,
// indirect CRLs (certificateIssuer entries), CRLs scoped to some reasons or
// to CA or attribute certificates only. CRLs must be X.509 v2 with a
// nextUpdate.
package revocation
