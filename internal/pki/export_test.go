package pki

// OIDOCSPNoCheck lets the external tests find the extension; the package
// keeps the OID unexported so no other package can change it.
var OIDOCSPNoCheck = oidOCSPNoCheck
