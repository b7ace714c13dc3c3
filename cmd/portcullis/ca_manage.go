package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/store"
)

func newCARevokeCmd(f *caFlags) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "revoke SERIAL|NAME",
		Short: "Revoke a certificate and publish a new CRL",
		Args:  exactArgs(1, "a SERIAL or NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			code, err := ca.ParseReason(reason)
			if err != nil {
				return usageError{err}
			}
			return f.withCA(c, func(s *session) error {
				rec, err := s.Revoke(c.Context(), args[0], code)
				if rec != nil {
					fmt.Fprintf(c.OutOrStdout(), "revoked %s: serial %s, reason %s\n", rec.Name, rec.Serial, ca.ReasonName(rec.Reason))
				}
				if err == nil {
					fmt.Fprintf(c.OutOrStdout(), "CRL updated: %s\n", s.Layout().CRL())
				}
				return err
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "unspecified", "RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn")
	return c
}

func newCACRLCmd(f *caFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "crl",
		Short: "Sign a new CRL (next CRL number) into DIR/crl.pem",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return f.withCA(c, func(s *session) error {
				crl, err := s.CRL(c.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "CRL %s: number %s, %d entries, next update %s\n", s.Layout().CRL(),
					crl.Number, len(crl.RevokedCertificateEntries), crl.NextUpdate.Format(time.RFC3339))
				return nil
			})
		},
	}
}

// certView is how `ca list --json` and `ca show --json` print a record.
type certView struct {
	Serial    string    `json:"serial"`
	Name      string    `json:"name"`
	Profile   string    `json:"profile"`
	Status    string    `json:"status"`
	Subject   string    `json:"subject"`
	DNS       []string  `json:"dns,omitempty"`
	IPs       []string  `json:"ips,omitempty"`
	Emails    []string  `json:"emails,omitempty"`
	URIs      []string  `json:"uris,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Reason    string    `json:"revocation_reason,omitempty"`
}

func viewOf(r *store.Cert, now time.Time) certView {
	v := certView{Serial: r.Serial, Name: r.Name, Profile: r.Profile, Status: string(r.Status), Subject: r.Subject,
		NotBefore: r.NotBefore, NotAfter: r.NotAfter}
	if r.Status != store.StatusRevoked && r.Expired(now) {
		v.Status = "expired"
	}
	if r.Status == store.StatusRevoked {
		v.RevokedAt, v.Reason = r.RevokedAt, ca.ReasonName(r.Reason)
	}
	if c, err := x509.ParseCertificate(r.DER); err == nil {
		v.DNS, v.Emails = c.DNSNames, c.EmailAddresses
		for _, ip := range c.IPAddresses {
			v.IPs = append(v.IPs, ip.String())
		}
		for _, u := range c.URIs {
			v.URIs = append(v.URIs, u.String())
		}
	}
	return v
}

func newCAListCmd(f *caFlags) *cobra.Command {
	var asJSON, expired, revoked bool
	var expiring, profile string
	c := &cobra.Command{
		Use:   "list",
		Short: "List certificates (table or --json)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			now := time.Now()
			var filt store.Filter
			if profile != "" {
				filt.Profile = profile
			}
			if revoked {
				filt.Status = store.StatusRevoked
			}
			if expired {
				filt.NotAfterBefore = now
			}
			if expiring != "" {
				d, err := ca.ParseDuration(expiring)
				if err != nil {
					return usageError{fmt.Errorf("--expiring: %w", err)}
				}
				filt.NotAfterBefore, filt.NotAfterAfter = now.Add(d), now
				if filt.Status == "" {
					filt.Status = store.StatusActive
				}
			}
			return f.withCA(c, func(s *session) error {
				recs, err := s.List(c.Context(), filt)
				if err != nil {
					return err
				}
				views := make([]certView, len(recs))
				for i, r := range recs {
					views[i] = viewOf(r, now)
				}
				if asJSON {
					return writeJSON(c.OutOrStdout(), views)
				}
				return printTable(c.OutOrStdout(), views)
			})
		},
	}
	fl := c.Flags()
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	fl.BoolVar(&expired, "expired", false, "only expired certificates")
	fl.BoolVar(&revoked, "revoked", false, "only revoked certificates")
	fl.StringVar(&expiring, "expiring", "", "only active certificates expiring within this window (e.g. 7d)")
	fl.StringVar(&profile, "profile", "", "only this profile (root, intermediate, server, client, device)")
	return c
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTable(w io.Writer, views []certView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPROFILE\tSTATUS\tSERIAL\tNOT AFTER\tNAMES")
	for _, v := range views {
		names := strings.Join(append(append(append(append([]string{}, v.DNS...), v.IPs...), v.Emails...), v.URIs...), ",")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Profile, v.Status, v.Serial, v.NotAfter.Format(time.DateOnly), names)
	}
	return tw.Flush()
}

func newCAShowCmd(f *caFlags) *cobra.Command {
	var asJSON, asPEM bool
	c := &cobra.Command{
		Use:   "show SERIAL|NAME",
		Short: "Show one certificate",
		Args:  exactArgs(1, "a SERIAL or NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withCA(c, func(s *session) error {
				rec, err := s.Find(c.Context(), args[0])
				if err != nil {
					return err
				}
				w := c.OutOrStdout()
				switch {
				case asPEM:
					return pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: rec.DER})
				case asJSON:
					return writeJSON(w, viewOf(rec, time.Now()))
				}
				v := viewOf(rec, time.Now())
				fmt.Fprintf(w, "name:       %s\nprofile:    %s\nstatus:     %s\nserial:     %s\nsubject:    %s\nnot before: %s\nnot after:  %s\n",
					v.Name, v.Profile, v.Status, v.Serial, v.Subject, v.NotBefore.Format(time.RFC3339), v.NotAfter.Format(time.RFC3339))
				for _, l := range []struct {
					k  string
					vs []string
				}{{"dns", v.DNS}, {"ip", v.IPs}, {"email", v.Emails}, {"uri", v.URIs}} {
					if len(l.vs) > 0 {
						fmt.Fprintf(w, "%-11s %s\n", l.k+":", strings.Join(l.vs, ", "))
					}
				}
				if v.Reason != "" {
					fmt.Fprintf(w, "revoked:    %s (%s)\n", v.RevokedAt.Format(time.RFC3339), v.Reason)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&asPEM, "pem", false, "print the certificate as PEM")
	return c
}

func newCARenewCmd(f *caFlags) *cobra.Command {
	var rekey bool
	c := &cobra.Command{
		Use:   "renew SERIAL|NAME",
		Short: "Issue a fresh certificate for the same name and names; the old one is superseded",
		Args:  exactArgs(1, "a SERIAL or NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return f.withCA(c, func(s *session) error {
				out, err := s.Renew(c.Context(), args[0], rekey)
				if err != nil {
					return err
				}
				printIssued(c.OutOrStdout(), "renewed", out)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&rekey, "rekey", false, "generate a new key instead of reusing the old public key")
	return c
}

func newCAExportCmd(f *caFlags) *cobra.Command {
	var o ca.ExportOptions
	var p12 bool
	var out, passwordFile string
	c := &cobra.Command{
		Use:   "export SERIAL|NAME",
		Short: "Export a certificate as a PEM chain or, with its key, as PKCS#12",
		Args:  exactArgs(1, "a SERIAL or NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			o.Format = ca.FormatPEM
			if p12 {
				o.Format = ca.FormatP12
				pw, err := exportPassword(passwordFile)
				if err != nil {
					return err
				}
				o.Password = pw
			}
			return f.withCA(c, func(s *session) error {
				e, err := s.Export(c.Context(), args[0], o)
				if errors.Is(err, ca.ErrRevoked) {
					return fmt.Errorf("%w; not exported (`portcullis ca show --pem %s` still prints the certificate)", err, args[0])
				}
				if err != nil {
					return err
				}
				if out == "" {
					out = e.Path
				}
				if out == "" || out == "-" {
					_, err = c.OutOrStdout().Write(e.Data)
					return err
				}
				if err := e.WriteFile(out); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "wrote %s\n", out)
				return nil
			})
		},
	}
	fl := c.Flags()
	fl.BoolVar(&p12, "p12", false, "PKCS#12 with the key and chain (default: PEM chain)")
	fl.StringVar(&passwordFile, "password-file", "", "file whose first line is the PKCS#12 password (else $PORTCULLIS_P12_PASSWORD, else a prompt)")
	fl.StringVar(&out, "out", "", "output file (default: stdout for PEM, DIR/private/NAME.p12 for --p12)")
	fl.BoolVar(&o.WithKey, "with-key", false, "PEM: put the private key first")
	fl.BoolVar(&o.WithRoot, "with-root", false, "PEM: append the root to the chain")
	return c
}

// p12PasswordEnv is where non-interactive runs put the PKCS#12 password.
const p12PasswordEnv = "PORTCULLIS_P12_PASSWORD"

func exportPassword(file string) (string, error) {
	pw, err := keystore.Source{File: file, Env: p12PasswordEnv, Prompt: "PKCS#12 password", Confirm: true}.Passphrase()()
	if errors.Is(err, keystore.ErrNoTerminal) {
		return "", errors.New("--p12 needs a password: --password-file or $" + p12PasswordEnv)
	}
	return string(pw), err
}

func newCAImportEasyRSACmd(f *caFlags) *cobra.Command {
	var srcPassFile string
	var noPassphrase bool
	c := &cobra.Command{
		Use:   "import-easyrsa EASYRSA_DIR",
		Short: "Adopt an existing easy-rsa PKI (CA, issued and revoked certificates, keys) into --dir",
		Args:  exactArgs(1, "the easy-rsa directory"),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return fmt.Errorf("easy-rsa directory: %w", err)
			}
			return f.withNewCA(c, nil, func(s *session) error {
				pass, err := f.newPassphrase(noPassphrase, c.ErrOrStderr())
				if err != nil {
					return err
				}
				src := keystore.Passphrase(func() ([]byte, error) { return pass, nil })
				if srcPassFile != "" {
					src = keystore.FromFile(srcPassFile)
				}
				o := ca.EasyRSAOptions{Source: args[0], SourcePassphrase: src, Passphrase: pass}
				_, rep, err := ca.ImportEasyRSA(c.Context(), f.dir, s.st, o, s.opts)
				if err != nil {
					return err
				}
				printImport(c.OutOrStdout(), f.dir, rep)
				return nil
			})
		},
	}
	c.Flags().StringVar(&srcPassFile, "easyrsa-passphrase-file", "", "passphrase of easy-rsa's ca.key (default: the new CA passphrase)")
	c.Flags().BoolVar(&noPassphrase, "no-passphrase", false, "store the adopted CA key unencrypted (unsafe)")
	return c
}

func printImport(w io.Writer, dir string, rep *ca.ImportReport) {
	fmt.Fprintf(w, "imported %d certificates (%d revoked, %d expired) and %d keys into %s\n", rep.Certificates, rep.Revoked, rep.Expired, rep.Keys, dir)
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "  skipped %s\n", s)
	}
}
