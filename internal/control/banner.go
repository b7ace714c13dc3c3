package control

import (
	"fmt"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/ca"
)

// printBanner says where things are and what to do next, as commands that
// work when copied (TestRunScript runs them).
func printBanner(o Options, c *Config, a *ca.Authority, fresh bool, passPath string) {
	w := o.Stdout
	bin := o.Binary
	if bin == "" {
		bin = "portcullis"
	}
	p := paths(a.Layout(), passPath)
	if fresh {
		fmt.Fprintf(w, "Created a CA, a server certificate and the first admin's certificate in %s\n", c.Data)
	}
	fmt.Fprintf(w, "Portcullis control server\n")
	fmt.Fprintf(w, "  API (HTTPS, mTLS for admins and renewals): %s\n", c.apiURL())
	fmt.Fprintf(w, "  CRL and OCSP (HTTP):                       %s/crl/issuing.crl  %s/ocsp\n", c.publicURL(), c.publicURL())
	fmt.Fprintf(w, "  CA root:        %s\n", p.Root)
	fmt.Fprintf(w, "  CA fingerprint: SHA256 %s\n", fingerprint(a.Root()))
	fmt.Fprintf(w, "  admin bundle:   %s (password in %s; PEM: %s + %s)\n", p.AdminP12, p.AdminPass, p.AdminCert, p.AdminKey)
	fmt.Fprintf(w, "  CA passphrase:  %s\n", p.Passphrase)
	admin := fmt.Sprintf("%s admin --server %s --cacert %s --cert %s --key %s", bin, c.apiURL(), p.Root, p.AdminCert, p.AdminKey)
	steps := []string{
		fmt.Sprintf("%s enroll --server %s --cacert %s --name laptop-1 --out laptop-1 --wait 0", bin, c.apiURL(), p.Root),
		admin + " requests approve --hostname laptop-1",
		fmt.Sprintf("%s enroll --server %s --cacert %s --name laptop-1 --out laptop-1", bin, c.apiURL(), p.Root),
		fmt.Sprintf("curl -s %s/crl/issuing.crl | openssl crl -inform DER -noout -text | head -8", c.publicURL()),
	}
	fmt.Fprintf(w, "\nNext steps (in another terminal, from this directory):\n")
	for i, s := range steps {
		fmt.Fprintf(w, "  %d. %s\n", i+1, s)
	}
	fmt.Fprintln(w, strings.Repeat("-", 72))
}
