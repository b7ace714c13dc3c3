package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"
)

// VerifyFunc authorizes a peer whose chain verified against the current
// roots: the tunnel plugs policy (--allow-*) and revocation in here. It
// runs on every handshake, resumed ones included. chains may be shared
// between handshakes and must not be modified. In TLS 1.3 a server's hook
// runs before crypto/tls checks the client's CertificateVerify, so it must
// only decide: record "connection allowed" once Handshake returns.
type VerifyFunc func(cs tls.ConnectionState, chains [][]*x509.Certificate) error

// ServerConfig returns a server config presenting s's certificate and
// requiring a client certificate that chains to s's roots, for clientAuth,
// then passing verify (nil: any such client). The chain is checked in
// VerifyConnection, not by crypto/tls, for two reasons: the roots are read
// at each handshake, so a reload applies without a new listener; and
// crypto/tls does not re-verify a resumed session's chain, where
// VerifyConnection runs on every handshake, so a session from a client
// whose CA was removed, or whom the hook now denies, does not resume.
func ServerConfig(s *Store, verify VerifyFunc) *tls.Config {
	c := Server()
	c.GetCertificate = s.GetCertificate
	// RequireAnyClientCert: the client must send a certificate and prove
	// its key; whether the chain is any good is VerifyConnection's call.
	c.ClientAuth = tls.RequireAnyClientCert
	c.VerifyConnection = newVerifier(s, x509.ExtKeyUsageClientAuth, "", verify).verifyConnection
	return c
}

// ClientConfig returns a client config presenting s's certificate when the
// server asks for one and verifying the server's chain against s's roots
// for serverAuth, and its name against serverName (a DNS name or an IP
// address) unless serverName is empty, then passing verify. serverName is
// also sent as SNI. An empty serverName with a nil verify accepts any
// server certificate from the roots: give one or the other.
func ClientConfig(s *Store, serverName string, verify VerifyFunc) *tls.Config {
	c := Client()
	c.ServerName = serverName
	c.GetClientCertificate = s.GetClientCertificate
	// Not insecure: VerifyConnection does what crypto/tls would, against
	// the roots current at each handshake, resumed ones included.
	c.InsecureSkipVerify = true
	c.VerifyConnection = newVerifier(s, x509.ExtKeyUsageServerAuth, serverName, verify).verifyConnection
	return c
}

// maxVerified bounds a verifier's cache; when full it starts over, which
// costs one chain verification per peer.
const maxVerified = 4096

// verifier checks peer chains for one config. It remembers chains it
// verified: building and checking a chain is an ECDSA verification per
// link, about a sixth of a server's CPU in a full mTLS handshake, and
// fleets reconnect with the same certificate all day. An entry is reused
// only for the same roots snapshot (a reload starts afresh), the same
// certificates as presented, and while every certificate of the chains is
// within its validity period, so it gives the answer x509.Verify would.
// Only chains to our own CA bundle are cached: a platform verifier (system
// roots on macOS and Windows) may consult more than the certificates.
type verifier struct {
	store  *Store
	usages []x509.ExtKeyUsage
	name   string // checked against the peer's SANs unless empty
	peer   string // "client" or "server", for errors
	hook   VerifyFunc

	mu    sync.Mutex
	cache map[string]*verified // by the leaf's DER
}

type verified struct {
	gen                 uint64   // the snapshot's; a pointer would keep an old key alive
	rest                [][]byte // DER of the certificates after the leaf, as presented
	chains              [][]*x509.Certificate
	notBefore, notAfter time.Time // when every certificate in chains is valid
}

func newVerifier(s *Store, usage x509.ExtKeyUsage, name string, hook VerifyFunc) *verifier {
	peer := "client"
	if usage == x509.ExtKeyUsageServerAuth {
		peer = "server"
	}
	return &verifier{store: s, usages: []x509.ExtKeyUsage{usage}, name: name, peer: peer, hook: hook, cache: make(map[string]*verified)}
}

func (v *verifier) verifyConnection(cs tls.ConnectionState) error {
	chains, err := v.verify(cs.PeerCertificates)
	if err != nil {
		return err
	}
	if v.hook != nil {
		return v.hook(cs, chains)
	}
	return nil
}

// verify checks the peer's chain against the current roots, using the
// certificates crypto/tls already parsed. The intermediates pool is built
// only when the peer sent intermediates.
func (v *verifier) verify(certs []*x509.Certificate) ([][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: %w", v.peer, ErrNoPeerCertificate)
	}
	snap, now := v.store.cur.Load(), v.store.now()
	if chains := v.lookup(snap, certs, now); chains != nil {
		return chains, nil
	}
	opts := x509.VerifyOptions{Roots: snap.roots, KeyUsages: v.usages, DNSName: v.name, CurrentTime: now}
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return nil, fmt.Errorf("%s certificate %q (serial %x): %w", v.peer, certs[0].Subject.String(), certs[0].SerialNumber, err)
	}
	if snap.rootCerts != nil {
		v.remember(snap, certs, chains)
	}
	return chains, nil
}

func (v *verifier) lookup(snap *snapshot, certs []*x509.Certificate, now time.Time) [][]*x509.Certificate {
	v.mu.Lock()
	e := v.cache[string(certs[0].Raw)]
	v.mu.Unlock()
	if e == nil || e.gen != snap.gen || now.Before(e.notBefore) || now.After(e.notAfter) || len(e.rest) != len(certs)-1 {
		return nil
	}
	for i, der := range e.rest {
		if !bytes.Equal(der, certs[i+1].Raw) {
			return nil
		}
	}
	return e.chains
}

func (v *verifier) remember(snap *snapshot, certs []*x509.Certificate, chains [][]*x509.Certificate) {
	e := &verified{gen: snap.gen, chains: chains, notAfter: chains[0][0].NotAfter}
	for _, c := range certs[1:] {
		e.rest = append(e.rest, c.Raw)
	}
	for _, chain := range chains {
		for _, c := range chain {
			if c.NotBefore.After(e.notBefore) {
				e.notBefore = c.NotBefore
			}
			if c.NotAfter.Before(e.notAfter) {
				e.notAfter = c.NotAfter
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxVerified {
		clear(v.cache)
	}
	v.cache[string(certs[0].Raw)] = e
}
