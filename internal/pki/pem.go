package pki

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
)

// The markers that open and close a PEM block. A marker is recognized
// anywhere on a line, not only at its start, so that no text that looks
// like a block can be passed over as a comment.
var (
	pemBegin = []byte("-----BEGIN")
	pemEnd   = []byte("-----END")
	newline  = []byte("\n")
)

// PEMError says where PEM input stops being readable.
type PEMError struct {
	Block  int // 1-based, counting BEGIN markers; 0 for a fault outside every block
	Line   int // 1-based line of the fault
	Reason string
}

func (e *PEMError) Error() string {
	if e.Block == 0 {
		return fmt.Sprintf("PEM line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("PEM block %d, line %d: %s", e.Block, e.Line, e.Reason)
}

// DecodePEMBlocks returns every PEM block of data, in order. It is the one
// PEM reader of the project: certificate bundles, CRLs, CSRs and key files
// all go through it.
//
// Unlike a loop over pem.Decode, which passes over a block it cannot decode
// and returns the next good one, it fails on the first block that does not
// decode (damaged base64, a missing or mismatched END line), with a
// *PEMError naming the block and the line: a bundle of [damaged root A,
// root B] must not load as B alone.
//
// Text before and between blocks is ignored: openssl writes "subject=",
// "Bag Attributes" lines and -text dumps ahead of each block, and CA
// bundles carry comments. After the last block only white space may
// follow: nothing legitimate is written there, and text there is what is
// left of a cut or lost block (the house rule on trailing data). An END
// marker outside a block is an error too, wherever it is: it is what is
// left of a block whose BEGIN line was damaged.
//
// Input without any block yields no blocks and no error: only the caller
// knows whether it needs one, of which type, or reads DER instead.
func DecodePEMBlocks(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest, line := data, 1
	for n := 1; ; n++ {
		start := bytes.Index(rest, pemBegin)
		if start < 0 {
			break
		}
		if err := checkOutside(rest[:start], line); err != nil {
			return nil, err
		}
		line += bytes.Count(rest[:start], newline)
		// Decode each block on its own, up to the next BEGIN marker, so
		// that pem.Decode cannot skip a damaged one.
		seg := rest[start:]
		if next := bytes.Index(seg[1:], pemBegin); next >= 0 {
			seg = seg[:next+1]
		}
		block, after := pem.Decode(seg)
		if block == nil {
			return nil, pemFault(seg, n, line)
		}
		used := seg[:len(seg)-len(after)]
		line += bytes.Count(used, newline)
		rest = rest[start+len(used):]
		blocks = append(blocks, block)
	}
	if err := checkOutside(rest, line); err != nil {
		return nil, err
	}
	if trail := bytes.TrimLeft(rest, " \t\r\n"); len(blocks) > 0 && len(trail) > 0 {
		at := line + bytes.Count(rest[:len(rest)-len(trail)], newline)
		return nil, &PEMError{Line: at, Reason: "text after the last block"}
	}
	return blocks, nil
}

// DecodeOne returns the DER of input that holds one object (a CSR, a CRL):
// data itself when it has no BEGIN marker, else the bytes of its one PEM
// block, which must be of one of types.
func DecodeOne(data []byte, types ...string) ([]byte, error) {
	if !bytes.Contains(data, pemBegin) {
		return data, nil
	}
	blocks, err := DecodePEMBlocks(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) > 1 {
		return nil, fmt.Errorf("more than one PEM block (%d), want one", len(blocks))
	}
	if !slices.Contains(types, blocks[0].Type) {
		return nil, fmt.Errorf("PEM block 1 is %q, want %s", blocks[0].Type, strings.Join(types, " or "))
	}
	return blocks[0].Bytes, nil
}

// checkOutside reports an END marker in text that lies outside every
// block; text starts on line.
func checkOutside(text []byte, line int) error {
	i := bytes.Index(text, pemEnd)
	if i < 0 {
		return nil
	}
	return &PEMError{Line: line + bytes.Count(text[:i], newline), Reason: "END line outside any block (is a BEGIN line damaged?)"}
}

// pemFault says why pem.Decode refused seg, block n, which starts on line.
// It only explains: the refusal itself is pem.Decode's, so a fault it
// cannot place is still reported, on the BEGIN line.
func pemFault(seg []byte, n, line int) *PEMError {
	lines := bytes.Split(seg, newline)
	fault := func(i int, reason string) *PEMError { return &PEMError{Block: n, Line: line + i, Reason: reason} }
	typ, ok := pemType(lines[0], "-----BEGIN ")
	if !ok {
		return fault(0, "malformed BEGIN line")
	}
	headers := true // RFC 1421 headers (Proc-Type, DEK-Info) come first
	for i, l := range lines[1:] {
		l = bytes.TrimRight(l, " \t\r")
		if bytes.HasPrefix(l, pemEnd) {
			if end, ok := pemType(l, "-----END "); !ok || end != typ {
				return fault(i+1, fmt.Sprintf("END line is not %q", "-----END "+typ+"-----"))
			}
			return fault(0, "base64 does not decode (bad padding?)")
		}
		if headers && bytes.Contains(l, []byte(":")) {
			continue
		}
		headers = false
		if strings.Trim(string(l), base64Chars) != "" {
			return fault(i+1, "not base64")
		}
	}
	return fault(0, fmt.Sprintf("no END line for %q (truncated?)", typ))
}

const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t"

// pemType returns the type of a BEGIN or END line ("-----BEGIN X-----").
func pemType(line []byte, prefix string) (string, bool) {
	s := strings.TrimRight(string(line), " \t\r")
	if !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, "-----") || len(s) < len(prefix)+len("-----") {
		return "", false
	}
	return s[len(prefix) : len(s)-len("-----")], true
}
