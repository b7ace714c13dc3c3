// Package pki is the pure certificate logic of Portcullis: key generation,
// serials, certificate profiles and templates, CSR checks, name policy,
// pre-issuance linting, the one strict PEM reader (DecodePEMBlocks) and the
// certificate/CSR/PKCS#12 codecs. It does no I/O, so most unit tests and
// every fuzz target of the CA live here.
package pki
