// Package policy owns Portcullis's access rules over a peer's certificate
// identity: which verified peers a tunnel (and later the gateway) lets
// through. It compiles [Rules] (the --allow-* / --verify-* flags of
// `portcullis tunnel`, or a YAML file) into a [Policy] whose
// [Policy.Authorize] runs in tls.Config.VerifyConnection on every handshake,
// so it is allocation-light.
//
// The rules follow ghostunnel's access flags (auth/auth.go, ACL): any one
// matching rule allows, across all rule kinds (a logical OR). CN and OU
// compare exactly; URI patterns use ghostunnel's wildcard syntax
// (wildcard/matcher.go, see [CompileWildcard]). Portcullis adds DNS
// wildcards and case-insensitive DNS names, IP prefixes, e-mail SANs, SPKI
// SHA-256 pins and issuer names; the differences are documented on [Rules].
//
// Chain verification is not this package's job: Authorize assumes the leaf
// it is given has already been verified against the trusted CAs.
//
// The package imports only the standard library.
package policy
