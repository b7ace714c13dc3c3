package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/pki"
)

// nameFlags are the SAN flags of `ca issue`.
type nameFlags struct {
	dns, ips, emails, uris []string
	keyType, lifetime      string
}

func (n *nameFlags) register(c *cobra.Command, p pki.Profile) {
	fl := c.Flags()
	fl.StringSliceVar(&n.dns, "dns", nil, "DNS name SAN (repeatable or comma-separated)")
	if p == pki.ProfileServer {
		fl.StringSliceVar(&n.ips, "ip", nil, "IP address SAN (repeatable)")
	}
	if p == pki.ProfileClient {
		fl.StringSliceVar(&n.emails, "email", nil, "email SAN (repeatable)")
	}
	fl.StringSliceVar(&n.uris, "uri", nil, "URI SAN, e.g. spiffe://example.org/svc (repeatable)")
	fl.StringVar(&n.keyType, "key-type", "", "key type to generate (default: the CA's key_type)")
	fl.StringVar(&n.lifetime, "lifetime", "", "validity (default: the profile's lifetime in ca.yaml)")
}

func (n *nameFlags) request(p pki.Profile, name string) (ca.IssueRequest, error) {
	req := ca.IssueRequest{Profile: p, Name: name}
	if p == pki.ProfileServer && len(n.dns) == 0 && len(n.ips) == 0 {
		return req, usageError{errors.New("a server certificate needs --dns or --ip (or both)")}
	}
	var err error
	if req.Names, err = pki.ParseNames(n.dns, n.ips, n.emails, n.uris); err != nil {
		return req, usageError{err}
	}
	if n.keyType != "" {
		if req.KeyType, err = pki.ParseKeyType(n.keyType); err != nil {
			return req, usageError{err}
		}
	}
	if req.Lifetime, err = lifetimeFlag(n.lifetime); err != nil {
		return req, err
	}
	return req, nil
}

func lifetimeFlag(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := ca.ParseDuration(s)
	if err != nil {
		return 0, usageError{fmt.Errorf("--lifetime: %w", err)}
	}
	return d, nil
}

func newCAIssueCmd(f *caFlags) *cobra.Command {
	c := &cobra.Command{Use: "issue", Short: "Issue a certificate with a key generated here"}
	for _, p := range []struct {
		profile pki.Profile
		short   string
	}{
		{pki.ProfileServer, "Issue a TLS server certificate (serverAuth; needs --dns or --ip)"},
		{pki.ProfileClient, "Issue a TLS client certificate for a person or workload (clientAuth)"},
		{pki.ProfileDevice, "Issue a device certificate (clientAuth, OU=devices, URI spiffe://TRUST_DOMAIN/device/NAME)"},
	} {
		n := &nameFlags{}
		sub := &cobra.Command{
			Use:   string(p.profile) + " NAME",
			Short: p.short,
			Args:  exactArgs(1, "a NAME"),
			RunE: func(c *cobra.Command, args []string) error {
				req, err := n.request(p.profile, args[0])
				if err != nil {
					return err
				}
				return issue(c, f, req)
			},
		}
		n.register(sub, p.profile)
		c.AddCommand(sub)
	}
	return c
}

func issue(c *cobra.Command, f *caFlags, req ca.IssueRequest) error {
	return f.withCA(c, func(s *session) error {
		out, err := s.Issue(c.Context(), req)
		if err != nil {
			return err
		}
		printIssued(c.OutOrStdout(), "issued", out)
		return nil
	})
}

func printIssued(w io.Writer, verb string, out *ca.Issued) {
	fmt.Fprintf(w, "%s %s %s: serial %s, until %s\n", verb, out.Record.Profile, out.Record.Name, out.Record.Serial, out.Cert.NotAfter.Format(time.RFC3339))
	for _, p := range out.Files {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

func newCASignCmd(f *caFlags) *cobra.Command {
	var csrPath, profile, name, lifetime string
	c := &cobra.Command{
		Use:   "sign --csr FILE --profile server|client|device [--name NAME]",
		Short: "Sign a CSR made elsewhere (openssl, a device, a TPM); the CA checks it and builds its own certificate",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if csrPath == "" {
				return usageError{fmt.Errorf("--csr is required")}
			}
			p, err := pki.ParseProfile(profile)
			if err != nil {
				return usageError{err}
			}
			csr, err := readCSR(c, csrPath)
			if err != nil {
				return err
			}
			if name == "" {
				name = csr.Subject.CommonName
			}
			if err := ca.CheckName(name); err != nil {
				return fmt.Errorf("%w; pass --name", err)
			}
			d, err := lifetimeFlag(lifetime)
			if err != nil {
				return err
			}
			return issue(c, f, ca.IssueRequest{Profile: p, Name: name, CSR: csr, Lifetime: d})
		},
	}
	c.Flags().StringVar(&csrPath, "csr", "", "PKCS#10 request, PEM or DER ('-' for stdin)")
	c.Flags().StringVar(&profile, "profile", "", "server, client or device")
	c.Flags().StringVar(&name, "name", "", "certificate name (default: the CSR's CN)")
	c.Flags().StringVar(&lifetime, "lifetime", "", "validity (default: the profile's lifetime)")
	return c
}

func readCSR(c *cobra.Command, path string) (*x509.CertificateRequest, error) {
	var r io.Reader = c.InOrStdin()
	if path != "-" {
		fh, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading CSR: %w", err)
		}
		defer fh.Close()
		r = fh
	}
	data, err := io.ReadAll(io.LimitReader(r, pki.MaxCSRSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading CSR: %w", err)
	}
	csr, err := pki.ParseCSR(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return csr, nil
}
