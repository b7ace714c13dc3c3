package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
)

// cipherSuites are the TLS 1.2 suites we accept: forward secret (ECDHE)
// and authenticated encryption (AES-GCM, ChaCha20-Poly1305) only. TLS 1.3
// suites are not configurable and all qualify. crypto/tls orders them
// itself (AES-GCM first where the CPU has AES instructions).
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curves keeps X25519MLKEM768, Go's default since 1.24: a hybrid that stays
// as strong as X25519 if ML-KEM falls and protects recorded traffic against
// a future quantum computer. Both ends are usually ours and a Go client
// sends the hybrid key share first, so it is what they negotiate; peers
// without it (OpenSSL < 3.5) fall back to X25519 with no extra round trip.
// Its price is CPU: ML-KEM keygen, encapsulation and decapsulation add
// roughly a third to a full handshake, client and server together
// (BenchmarkHandshakeMTLS TLS13 against TLS13-X25519), and TLS 1.3
// resumption pays it too, since Go resumes with psk_dhe_ke.
// Go 1.26 also defaults to SecP256r1MLKEM768 and SecP384r1MLKEM1024, which
// exist for FIPS-only peers, and to P-384 and P-521; we drop those to keep
// the set small. In FIPS 140-3 mode crypto/tls filters this list down to
// X25519MLKEM768 and P-256, both approved. crypto/tls ignores the order
// (it has its own); TLS 1.2 handshakes skip the TLS 1.3-only hybrid.
var curves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}

// Server returns a fresh base server config: TLS 1.2 minimum (1.3 is
// negotiated whenever the client offers it), ECDHE+AEAD suites,
// X25519MLKEM768/X25519/P-256, session tickets on. It has no certificate
// or client authentication; ServerConfig adds those.
func Server() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     clone(cipherSuites),
		CurvePreferences: clone(curves),
		// Tickets are on by default; said here because resumption is
		// what makes reconnect storms cheap, and ServerConfig re-runs
		// authorization on every resumed session.
		SessionTicketsDisabled: false,
	}
}

// Client returns a fresh base client config with the same protocol limits
// as Server and its own session cache, so reconnects to a target resume.
func Client() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       clone(cipherSuites),
		CurvePreferences:   clone(curves),
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}
}

// clone copies s so that a caller editing one config's slices never
// changes another's.
func clone[T any](s []T) []T { return append([]T(nil), s...) }

// curveNames are the key exchanges an operator may name.
var curveNames = map[string]tls.CurveID{
	"x25519mlkem768": tls.X25519MLKEM768,
	"x25519":         tls.X25519,
	"p256":           tls.CurveP256,
	"p384":           tls.CurveP384,
}

// ParseCurves reads key exchange names (x25519mlkem768, x25519, p256,
// p384) for a CurvePreferences that replaces the default set: leaving
// x25519mlkem768 out trades post-quantum protection of recorded traffic for
// handshake CPU.
func ParseCurves(names []string) ([]tls.CurveID, error) {
	out := make([]tls.CurveID, 0, len(names))
	for _, n := range names {
		id, ok := curveNames[strings.ToLower(strings.TrimSpace(n))]
		if !ok {
			return nil, fmt.Errorf("key exchange %q: want x25519mlkem768, x25519, p256 or p384", n)
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, errors.New("no key exchange named")
	}
	return out, nil
}
