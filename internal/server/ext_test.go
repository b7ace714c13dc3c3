package server_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

// caTrueExt is a basicConstraints extension with cA set, as a hostile CSR
// would ask for.
func caTrueExt(t *testing.T) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(struct{ IsCA bool }{true})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v}
}
