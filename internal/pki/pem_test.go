package pki_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

// blockA is a tiny well-formed block, for inputs written inline.
const blockA = "-----BEGIN A-----\nAAAA\n-----END A-----\n"

func TestDecodePEMBlocks(t *testing.T) {
	chain := readTestdata(t, "openssl-chain-text.pem")
	tests := []struct {
		name    string
		in      []byte
		want    []string      // block types, when it decodes
		wantErr *pki.PEMError // Block and Line; Reason is not compared
	}{
		{"openssl -text chain", chain, []string{"CERTIFICATE", "CERTIFICATE", "CERTIFICATE"}, nil},
		{"CRLF", bytes.ReplaceAll(chain, []byte("\n"), []byte("\r\n")), []string{"CERTIFICATE", "CERTIFICATE", "CERTIFICATE"}, nil},
		{"legacy encrypted key headers", readTestdata(t, "pem-headers.pem"), []string{"EC PRIVATE KEY"}, nil},
		{"empty", nil, nil, nil},
		{"text only", []byte("# no blocks here\n\n"), nil, nil},
		{"text before and between", []byte("subject=CN = a\n" + blockA + "# b\n" + blockA + "\n \t\r\n"), []string{"A", "A"}, nil},
		{"BEGIN marker inside a line", []byte("subject=x " + blockA), []string{"A"}, nil},
		{"empty block", []byte("-----BEGIN A-----\n-----END A-----\n"), []string{"A"}, nil},
		{"no final newline", []byte(strings.TrimSuffix(blockA, "\n")), []string{"A"}, nil},

		{"damaged middle block", readTestdata(t, "pem-damaged-middle.pem"), nil, &pki.PEMError{Block: 2, Line: 97}},
		{"damaged last block", readTestdata(t, "pem-damaged-last.pem"), nil, &pki.PEMError{Block: 3, Line: 150}},
		{"truncated last block", readTestdata(t, "pem-truncated.pem"), nil, &pki.PEMError{Block: 3, Line: 143}},
		{"lost BEGIN line", readTestdata(t, "pem-lost-begin.pem"), nil, &pki.PEMError{Block: 0, Line: 105}},
		{"damaged first block", []byte("-----BEGIN A-----\nA!AA\n-----END A-----\n" + blockA), nil, &pki.PEMError{Block: 1, Line: 2}},
		{"damaged middle, inline", []byte(blockA + "-----BEGIN A-----\nAAAA\nA*AA\n-----END A-----\n" + blockA), nil, &pki.PEMError{Block: 2, Line: 6}},
		{"damaged last, inline", []byte(blockA + "text\n" + "-----BEGIN A-----\nAA\tA~\n-----END A-----\n"), nil, &pki.PEMError{Block: 2, Line: 6}},
		{"text after a damaged last block", []byte(blockA + "-----BEGIN A-----\nA~AA\n-----END A-----\nnotes\n"), nil, &pki.PEMError{Block: 2, Line: 5}},
		{"no END before the next block", []byte("-----BEGIN A-----\nAAAA\n" + blockA), nil, &pki.PEMError{Block: 1, Line: 1}},
		{"END of another type", []byte(blockA + "-----BEGIN A-----\nAAAA\n-----END B-----\n"), nil, &pki.PEMError{Block: 2, Line: 6}},
		{"text after END marker", []byte("-----BEGIN A-----\nAAAA\n-----END A----- x\n"), nil, &pki.PEMError{Block: 1, Line: 3}},
		{"malformed BEGIN line", []byte("-----BEGIN A\nAAAA\n-----END A-----\n"), nil, &pki.PEMError{Block: 1, Line: 1}},
		{"bad padding", []byte("-----BEGIN A-----\nAA=A\n-----END A-----\n"), nil, &pki.PEMError{Block: 1, Line: 1}},
		{"stray END line at the end", []byte(blockA + "\n-----END A-----\n"), nil, &pki.PEMError{Block: 0, Line: 5}},
		{"text after the last block", []byte(blockA + "# b\n" + blockA + "\n  notes\n"), nil, &pki.PEMError{Block: 0, Line: 9}},
		{"stray END line first", []byte("-----END A-----\n" + blockA), nil, &pki.PEMError{Block: 0, Line: 1}},
		{"bare BEGIN marker", []byte(blockA + "-----BEGIN"), nil, &pki.PEMError{Block: 2, Line: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, err := pki.DecodePEMBlocks(tt.in)
			if tt.wantErr != nil {
				var pe *pki.PEMError
				if !errors.As(err, &pe) || pe.Block != tt.wantErr.Block || pe.Line != tt.wantErr.Line || pe.Reason == "" {
					t.Fatalf("DecodePEMBlocks(%s) = %d blocks, %v; want an error at block %d, line %d",
						tt.name, len(blocks), err, tt.wantErr.Block, tt.wantErr.Line)
				}
				return
			}
			var got []string
			for _, b := range blocks {
				got = append(got, b.Type)
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("DecodePEMBlocks(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
}

// TestPEMErrorText: the message says which block and which line, the way
// a bundle's owner looks for them.
func TestPEMErrorText(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{blockA + "-----BEGIN A-----\nA!AA\n-----END A-----\n", "PEM block 2, line 5: not base64"},
		{blockA + "-----END A-----\n", "PEM line 4: END line outside any block (is a BEGIN line damaged?)"},
		{"-----BEGIN A-----\nAAAA\n", `PEM block 1, line 1: no END line for "A" (truncated?)`},
		{blockA + "\n-- \n", "PEM line 5: text after the last block"},
		{"-----BEGIN A-----\nAAAA\n-----END B-----\n", `PEM block 1, line 3: END line is not "-----END A-----"`},
	}
	for _, tt := range tests {
		_, err := pki.DecodePEMBlocks([]byte(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("DecodePEMBlocks(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestDecodeOne(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the DER as a string; "" means an error
	}{
		{"DER passes through", "\x30\x03\x02\x01\x01", "\x30\x03\x02\x01\x01"},
		{"one block", "-----BEGIN B-----\nAAAA\n-----END B-----\n", "\x00\x00\x00"},
		{"other accepted type", blockA, "\x00\x00\x00"},
		{"text before", "about:\n" + blockA + "\n", "\x00\x00\x00"},
		{"text after", blockA + "trailer\n", ""},
		{"wrong type", "-----BEGIN C-----\nAAAA\n-----END C-----\n", ""},
		{"two blocks", blockA + blockA, ""},
		{"damaged block after a good one", blockA + "-----BEGIN A-----\n!!!!\n-----END A-----\n", ""},
		{"damaged block before a good one", "-----BEGIN A-----\n!!!!\n-----END A-----\n" + blockA, ""},
		{"stray END line after", blockA + "-----END A-----\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.DecodeOne([]byte(tt.in), "A", "B")
			if tt.want == "" {
				if err == nil {
					t.Errorf("DecodeOne(%q) = %x, want an error", tt.in, got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("DecodeOne(%q) = %x, %v, want %x", tt.in, got, err, tt.want)
			}
		})
	}
}
