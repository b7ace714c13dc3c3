package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// PROXY protocol v2 (haproxy.org/download/2.9/doc/proxy-protocol.txt): a
// binary header the tunnel sends to a backend before the client's bytes, so
// a TCP backend learns the client's address and, through TLVs, who it is.

var proxySig = []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// TLV types used. The standard ones come from the spec; the custom range
// 0xE0–0xEF carries what the spec has no type for.
const (
	tlvALPN      = 0x01
	tlvAuthority = 0x02 // the SNI the client sent
	tlvSSL       = 0x20
	tlvSSLVer    = 0x21 // sub-TLV of tlvSSL: "TLSv1.3"
	tlvSSLCN     = 0x22 // sub-TLV: the client certificate's subject CN
	tlvSSLCipher = 0x23 // sub-TLV: cipher suite name
	// TLVURISAN carries one URI SAN of the client certificate (a SPIFFE
	// ID, typically); repeated for each.
	TLVURISAN = 0xE0
	// TLVSerial carries the client certificate's serial as lowercase hex.
	TLVSerial = 0xE1

	// PP2_CLIENT_* bits of tlvSSL. CERT_CONN: the client sent a
	// certificate on this connection; CERT_SESS: it did at least once in
	// the TLS session. A resumed session has SESS without CONN.
	ppClientSSL      = 0x01
	ppClientCertConn = 0x02
	ppClientCertSess = 0x04
)

// maxProxyHeader bounds a header; ours are well under 1 KiB.
const maxProxyHeader = 16 + 216 + 4096

// ProxyHeader is what the tunnel tells a backend about a connection.
type ProxyHeader struct {
	Src, Dst netip.AddrPort
	// TLS facts; empty when the client did not use TLS.
	TLSVersion string
	Cipher     string
	SNI        string
	ALPN       string
	// Identity of the verified client certificate.
	CN      string
	URIs    []string
	Serial  string
	Resumed bool
}

// AppendProxyHeader appends the v2 header for h to b. Addresses of
// different families are sent as IPv6 (IPv4-mapped), as the spec asks.
func AppendProxyHeader(b []byte, h *ProxyHeader) ([]byte, error) {
	src, dst := h.Src.Addr(), h.Dst.Addr()
	if !src.IsValid() || !dst.IsValid() {
		return nil, errors.New("proxy header: source and destination addresses are required")
	}
	b = append(b, proxySig...)
	b = append(b, 0x21) // version 2, command PROXY
	v4 := src.Unmap().Is4() && dst.Unmap().Is4()
	if v4 {
		b = append(b, 0x11) // TCP over IPv4
	} else {
		b = append(b, 0x21) // TCP over IPv6
	}
	lenAt := len(b)
	b = append(b, 0, 0)
	if v4 {
		s, d := src.Unmap().As4(), dst.Unmap().As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	} else {
		s, d := src.As16(), dst.As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, h.Src.Port())
	b = binary.BigEndian.AppendUint16(b, h.Dst.Port())
	var err error
	if h.SNI != "" {
		b, err = appendTLV(b, tlvAuthority, h.SNI)
	}
	if err == nil && h.ALPN != "" {
		b, err = appendTLV(b, tlvALPN, h.ALPN)
	}
	// Any TLS fact goes out, so that everything ParseProxyHeader decodes
	// survives being encoded again.
	if err == nil && (h.TLSVersion != "" || h.Cipher != "" || h.CN != "" || h.Resumed) {
		b, err = appendSSL(b, h)
	}
	for _, u := range h.URIs {
		if err == nil {
			b, err = appendTLV(b, TLVURISAN, u)
		}
	}
	if err == nil && h.Serial != "" {
		b, err = appendTLV(b, TLVSerial, h.Serial)
	}
	if err != nil {
		return nil, err
	}
	n := len(b) - lenAt - 2
	if n > 0xFFFF {
		return nil, errors.New("proxy header: longer than 65535 bytes")
	}
	binary.BigEndian.PutUint16(b[lenAt:], uint16(n))
	return b, nil
}

func appendTLV(b []byte, typ byte, v string) ([]byte, error) {
	if len(v) > 0xFFFF {
		return nil, fmt.Errorf("proxy header: TLV 0x%02x longer than 65535 bytes", typ)
	}
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...), nil
}

func appendSSL(b []byte, h *ProxyHeader) ([]byte, error) {
	b = append(b, tlvSSL, 0, 0)
	at := len(b)
	client := byte(ppClientSSL)
	switch {
	case h.Resumed:
		client |= ppClientCertSess
	case h.CN != "" || len(h.URIs) > 0 || h.Serial != "":
		client |= ppClientCertConn | ppClientCertSess
	}
	b = append(b, client)
	b = binary.BigEndian.AppendUint32(b, 0) // verify: 0 = the certificate was verified
	var err error
	if h.TLSVersion != "" {
		b, err = appendTLV(b, tlvSSLVer, h.TLSVersion)
	}
	if err == nil && h.Cipher != "" {
		b, err = appendTLV(b, tlvSSLCipher, h.Cipher)
	}
	if err == nil && h.CN != "" {
		b, err = appendTLV(b, tlvSSLCN, h.CN)
	}
	if err != nil {
		return nil, err
	}
	n := len(b) - at
	if n > 0xFFFF {
		return nil, errors.New("proxy header: SSL TLV longer than 65535 bytes")
	}
	binary.BigEndian.PutUint16(b[at-2:], uint16(n))
	return b, nil
}

// ParseProxyHeader decodes a v2 header at the start of data and returns it
// with the number of bytes it took. Backends in tests use it; the fuzz
// target checks it inverts AppendProxyHeader.
func ParseProxyHeader(data []byte) (*ProxyHeader, int, error) {
	if len(data) < 16 {
		return nil, 0, errors.New("proxy header: short")
	}
	if !bytes.Equal(data[:12], proxySig) {
		return nil, 0, errors.New("proxy header: bad signature")
	}
	if data[12] != 0x21 {
		return nil, 0, fmt.Errorf("proxy header: version/command 0x%02x, want 0x21", data[12])
	}
	n := int(binary.BigEndian.Uint16(data[14:16]))
	if 16+n > len(data) || 16+n > maxProxyHeader {
		return nil, 0, errors.New("proxy header: length past the data")
	}
	body := data[16 : 16+n]
	h := &ProxyHeader{}
	var alen int
	switch data[13] {
	case 0x11:
		alen = 12
		if len(body) < alen {
			return nil, 0, errors.New("proxy header: short IPv4 addresses")
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 0x21:
		alen = 36
		if len(body) < alen {
			return nil, 0, errors.New("proxy header: short IPv6 addresses")
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	default:
		return nil, 0, fmt.Errorf("proxy header: family 0x%02x not supported", data[13])
	}
	if err := parseTLVs(body[alen:], h, false); err != nil {
		return nil, 0, err
	}
	return h, 16 + n, nil
}

func parseTLVs(b []byte, h *ProxyHeader, inSSL bool) error {
	for len(b) > 0 {
		if len(b) < 3 {
			return errors.New("proxy header: truncated TLV")
		}
		typ, n := b[0], int(binary.BigEndian.Uint16(b[1:3]))
		if len(b) < 3+n {
			return fmt.Errorf("proxy header: TLV 0x%02x past the end", typ)
		}
		v := b[3 : 3+n]
		b = b[3+n:]
		switch {
		case !inSSL && typ == tlvAuthority:
			h.SNI = string(v)
		case !inSSL && typ == tlvALPN:
			h.ALPN = string(v)
		case !inSSL && typ == TLVURISAN:
			h.URIs = append(h.URIs, string(v))
		case !inSSL && typ == TLVSerial:
			h.Serial = string(v)
		case !inSSL && typ == tlvSSL:
			if len(v) < 5 {
				return errors.New("proxy header: short SSL TLV")
			}
			h.Resumed = v[0]&(ppClientCertConn|ppClientCertSess) == ppClientCertSess
			if err := parseTLVs(v[5:], h, true); err != nil {
				return err
			}
		case inSSL && typ == tlvSSLVer:
			h.TLSVersion = string(v)
		case inSSL && typ == tlvSSLCipher:
			h.Cipher = string(v)
		case inSSL && typ == tlvSSLCN:
			h.CN = string(v)
		}
	}
	return nil
}
