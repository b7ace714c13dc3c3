// Package tlsconf owns Portcullis's TLS configuration: the one base
// tls.Config every listener and dialer starts from (Server, Client), the
// process identity and trust roots loaded from files (Source, Store) and
// swapped atomically on reload (SIGHUP via Store.Reload, file changes and
// timers via Store.Watch), and peer verification in VerifyConnection
// against the roots current at each handshake, resumed ones included
// (ServerConfig, ClientConfig).
//
// Verification is done here rather than by crypto/tls so that a reloaded
// CA bundle applies to the next handshake without rebuilding listeners,
// and so that authorization hooks (policy, revocation) run on session
// resumption too, which crypto/tls's own chain check skips.
package tlsconf
