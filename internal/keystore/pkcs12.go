package keystore

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// ParsePKCS12 decodes a PKCS#12 file (.p12, .pfx) holding one private key
// and its certificates, the leaf first. Its KDF iteration counts are
// checked against MaxPBKDF2Iterations before software.sslmate.com/src/go-pkcs12
// runs them, and a panic in that library becomes an ErrMalformedKey.
func ParsePKCS12(data []byte, password string) (crypto.Signer, []*x509.Certificate, error) {
	if err := checkPKCS12(data); err != nil {
		return nil, nil, err
	}
	type decoded struct {
		key   any
		chain []*x509.Certificate
	}
	d, err := contain("PKCS#12 decoding", func() (decoded, error) {
		k, leaf, cas, err := pkcs12.DecodeChain(data, password)
		return decoded{k, append([]*x509.Certificate{leaf}, cas...)}, err
	})
	if err != nil {
		return nil, nil, err
	}
	key, err := signer(d.key)
	if err != nil {
		return nil, nil, err
	}
	return key, d.chain, nil
}

// The PKCS#12 (RFC 7292) structures go-pkcs12 decodes, down to the places
// a file states a KDF cost, decoded here only to check those costs.
type pfx struct {
	Version  int
	AuthSafe contentInfo
	MacData  macData `asn1:"optional"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type macData struct {
	Mac struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type encryptedData struct {
	Version int
	Info    struct {
		ContentType asn1.ObjectIdentifier
		Algorithm   pkix.AlgorithmIdentifier
		Content     []byte `asn1:"tag:0,optional"`
	}
}

type safeBag struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"tag:0,explicit"`
	Attrs asn1.RawValue `asn1:"optional"`
}

var (
	oidData            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidShroudedKeyBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidPBMAC1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidPKCS12PBEPrefix = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
)

// checkPKCS12 applies the iteration cap to the MAC (classic or PBMAC1),
// to each encrypted safe and to each shrouded key bag in a plain safe.
// Bags inside an encrypted safe are only visible after decryption; by
// then the MAC has been verified with the password (a file without one is
// read only with an empty password), so their cost was set by someone who
// holds the password. The structs decode exactly what go-pkcs12's do, or
// more, so a part they cannot decode is one go-pkcs12 rejects too, without
// deriving a key: it is left to go-pkcs12 to report.
func checkPKCS12(der []byte) error {
	var p pfx
	if _, err := asn1.Unmarshal(der, &p); err != nil || !p.AuthSafe.ContentType.Equal(oidData) {
		return nil
	}
	if err := checkMAC(p.MacData); err != nil {
		return err
	}
	// As go-pkcs12 does: whatever element the content holds, its bytes.
	var inner asn1.RawValue
	var safes []contentInfo
	if _, err := asn1.Unmarshal(p.AuthSafe.Content.Bytes, &inner); err != nil {
		return nil
	}
	if _, err := asn1.Unmarshal(inner.Bytes, &safes); err != nil {
		return nil
	}
	for _, ci := range safes {
		if err := checkSafe(ci); err != nil {
			return err
		}
	}
	return nil
}

func checkMAC(m macData) error {
	switch {
	case len(m.Mac.Algorithm.Algorithm) == 0:
		return nil
	case m.Mac.Algorithm.Algorithm.Equal(oidPBMAC1):
		var params struct{ KDF, MAC pkix.AlgorithmIdentifier }
		if _, err := asn1.Unmarshal(m.Mac.Algorithm.Parameters.FullBytes, &params); err != nil {
			return nil
		}
		return checkPBKDF2Cost("PKCS#12 PBMAC1", params.KDF)
	}
	return checkCost("PKCS#12 MAC", m.Iterations)
}

// checkSafe checks the encryption of one safe of the AuthenticatedSafe,
// or the shrouded key bags of a plain one.
func checkSafe(ci contentInfo) error {
	switch {
	case ci.ContentType.Equal(oidEncryptedData):
		var ed encryptedData
		if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil {
			return nil
		}
		return checkPBE("PKCS#12 safe", ed.Info.Algorithm)
	case ci.ContentType.Equal(oidData):
		var octets []byte
		var bags []safeBag
		if _, err := asn1.Unmarshal(ci.Content.Bytes, &octets); err != nil {
			return nil
		}
		if _, err := asn1.Unmarshal(octets, &bags); err != nil {
			return nil
		}
		for _, b := range bags {
			var info encryptedPrivateKeyInfo
			if !b.ID.Equal(oidShroudedKeyBag) {
				continue
			}
			if _, err := asn1.Unmarshal(b.Value.Bytes, &info); err != nil {
				continue
			}
			if err := checkPBE("PKCS#12 key bag", info.Algorithm); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPBE checks the iteration count of PKCS#12 PBE (pbeWithSHAAnd…)
// or of PBES2 with PBKDF2.
func checkPBE(what string, alg pkix.AlgorithmIdentifier) error {
	switch {
	case alg.Algorithm.Equal(oidPBES2):
		var params pbes2Params
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &params); err != nil {
			return nil
		}
		return checkPBKDF2Cost(what+" PBES2", params.KDF)
	case len(alg.Algorithm) == len(oidPKCS12PBEPrefix)+1 && alg.Algorithm[:len(oidPKCS12PBEPrefix)].Equal(oidPKCS12PBEPrefix):
		var params struct {
			Salt       []byte
			Iterations int
		}
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &params); err != nil {
			return nil
		}
		return checkCost(what+" PBE", params.Iterations)
	}
	return nil
}

func checkPBKDF2Cost(what string, kdf pkix.AlgorithmIdentifier) error {
	var p pbkdf2Params
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		return nil
	}
	if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
		return nil
	}
	return checkCost(what, p.Iterations)
}

// checkCost applies only the cap: go-pkcs12 runs a count below 1 as one
// round, and files that old tools wrote so still open.
func checkCost(what string, n int) error {
	if n > limits.iterations {
		return fmt.Errorf("%w: %s iteration count %d, the limit is %d", ErrKDFCost, what, n, limits.iterations)
	}
	return nil
}
