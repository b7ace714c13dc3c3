package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/obs"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
)

var _ store.Store = (*sqlite.Store)(nil)

// passphraseEnv is where non-interactive runs put the CA passphrase.
const passphraseEnv = "PORTCULLIS_CA_PASSPHRASE"

// caFlags are shared by every `ca` subcommand.
type caFlags struct {
	dir            string
	passphraseFile string
}

func newCACmd() *cobra.Command {
	f := &caFlags{}
	c := &cobra.Command{
		Use:   "ca",
		Short: "Run a private certificate authority (root, intermediate, issue, revoke, CRL)",
		Long: `Run a private certificate authority.

Files follow easy-rsa's layout under --dir: ca.crt, intermediate.crt,
ca-bundle.crt, issued/NAME.crt, issued/NAME.chain.crt, private/NAME.key,
crl.pem, plus ca.yaml (settings), portcullis.db (records) and audit.log.

The CA keys are encrypted. The passphrase comes from --passphrase-file,
else $` + passphraseEnv + `, else a terminal prompt.`,
	}
	c.PersistentFlags().StringVar(&f.dir, "dir", "./pki", "CA directory")
	c.PersistentFlags().StringVar(&f.passphraseFile, "passphrase-file", "", "file whose first line is the CA key passphrase")
	c.AddCommand(
		newCAInitCmd(f), newCAIssueCmd(f), newCASignCmd(f), newCARevokeCmd(f), newCACRLCmd(f),
		newCAListCmd(f), newCAShowCmd(f), newCARenewCmd(f), newCAExportCmd(f), newCAImportEasyRSACmd(f),
	)
	explainErrors(c, f)
	return c
}

// explainErrors makes every subcommand of c pass its error through
// f.explain, so no command can forget to.
func explainErrors(c *cobra.Command, f *caFlags) {
	for _, sub := range c.Commands() {
		explainErrors(sub, f)
	}
	if run := c.RunE; run != nil {
		c.RunE = func(c *cobra.Command, args []string) error { return f.explain(run(c, args)) }
	}
}

// explain adds to an error of package ca what it means on this command
// line: ca's errors name no flags, the CLI's do.
func (f *caFlags) explain(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ca.ErrNotInitialized):
		return fmt.Errorf("%w (--dir names the CA directory, default ./pki; `make run` keeps its CA in ./portcullis-data; `portcullis ca init --dir %s` creates one)", err, f.dir)
	}
	return err
}

// passphrase returns the source of the existing CA passphrase.
func (f *caFlags) passphrase() keystore.Passphrase {
	switch {
	case f.passphraseFile != "":
		return keystore.Once(keystore.FromFile(f.passphraseFile))
	case os.Getenv(passphraseEnv) != "":
		return keystore.Once(keystore.FromEnv(passphraseEnv))
	}
	return keystore.Once(keystore.Prompt("CA key passphrase", false))
}

// newPassphrase obtains the passphrase for keys about to be encrypted.
func (f *caFlags) newPassphrase(noPassphrase bool, stderr io.Writer) ([]byte, error) {
	if noPassphrase {
		if f.passphraseFile != "" {
			return nil, usageError{errors.New("--no-passphrase and --passphrase-file exclude each other")}
		}
		fmt.Fprintln(stderr, "WARNING: --no-passphrase: the CA private keys will be stored UNENCRYPTED.")
		fmt.Fprintln(stderr, "WARNING: anyone who can read "+f.dir+"/private can issue certificates your fleet trusts.")
		return nil, nil
	}
	var src keystore.Passphrase
	switch {
	case f.passphraseFile != "":
		src = keystore.FromFile(f.passphraseFile)
	case os.Getenv(passphraseEnv) != "":
		src = keystore.FromEnv(passphraseEnv)
	default:
		src = keystore.Prompt("New CA key passphrase", true)
	}
	pw, err := src()
	if err != nil {
		return nil, err
	}
	if len(pw) < 8 {
		return nil, errors.New("the CA passphrase must be at least 8 characters")
	}
	return pw, nil
}

// session is an opened CA directory with its store and audit log.
type session struct {
	*ca.Authority
	st    *sqlite.Store
	audit *obs.AuditLog
}

func (s *session) Close() {
	if s.st != nil {
		s.st.Close()
	}
	if s.audit != nil {
		s.audit.Close()
	}
}

// options builds the CA options, opening the audit log in dir.
func (f *caFlags) options(stderr io.Writer) (ca.Options, *obs.AuditLog, error) {
	audit, err := obs.OpenAuditLog(ca.Layout{Dir: f.dir}.Audit())
	if err != nil {
		return ca.Options{}, nil, err
	}
	log, err := obs.NewLogger(stderr, "text", "warn")
	if err != nil {
		audit.Close()
		return ca.Options{}, nil, err
	}
	return ca.Options{Passphrase: f.passphrase(), Logger: log, Audit: audit.Logger(), Actor: actor()}, audit, nil
}

// open opens an existing CA.
func (f *caFlags) open(ctx context.Context, stderr io.Writer) (*session, error) {
	if !ca.Exists(f.dir) {
		return nil, fmt.Errorf("%s: %w", f.dir, ca.ErrNotInitialized)
	}
	s := &session{}
	var err error
	if s.st, err = sqlite.Open(ctx, ca.Layout{Dir: f.dir}.DB()); err != nil {
		return nil, err
	}
	opts, audit, err := f.options(stderr)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.audit = audit
	if s.Authority, err = ca.Open(ctx, f.dir, s.st, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// actor names the operator in audit events.
func actor() string {
	if u, err := user.Current(); err == nil {
		return "user:" + u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return "user:" + u
	}
	return "user:unknown"
}

func newCAInitCmd(f *caFlags) *cobra.Command {
	o := ca.DefaultInitOptions()
	var keyType, rootLife, interLife string
	var noPassphrase bool
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a root and an intermediate CA (or a root only)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			var err error
			if o.KeyType, err = pki.ParseKeyType(keyType); err != nil {
				return usageError{err}
			}
			if o.RootLifetime, err = ca.ParseDuration(rootLife); err != nil {
				return usageError{fmt.Errorf("--root-lifetime: %w", err)}
			}
			if o.IntermediateLifetime, err = ca.ParseDuration(interLife); err != nil {
				return usageError{fmt.Errorf("--intermediate-lifetime: %w", err)}
			}
			if ca.Exists(f.dir) {
				return fmt.Errorf("%s: %w", f.dir, ca.ErrExists)
			}
			if o.Passphrase, err = f.newPassphrase(noPassphrase, c.ErrOrStderr()); err != nil {
				return err
			}
			return initCA(c.Context(), f, o, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	fl := c.Flags()
	fl.StringVar(&keyType, "key-type", string(pki.DefaultKeyType), "key type of the CA keys and of generated leaf keys: p256, p384, rsa2048, rsa3072")
	fl.BoolVar(&o.RootOnly, "root-only", false, "no intermediate: the root signs leaves itself (as easy-rsa does)")
	fl.StringVar(&o.RootName, "root-cn", o.RootName, "common name of the root")
	fl.StringVar(&o.IntermediateName, "intermediate-cn", o.IntermediateName, "common name of the intermediate")
	fl.StringVar(&o.Organization, "org", o.Organization, "organization (O) of every subject")
	fl.StringVar(&o.Country, "country", o.Country, "two-letter country (C) of every subject")
	fl.StringVar(&rootLife, "root-lifetime", "10y", "root validity (e.g. 10y, 3650d)")
	fl.StringVar(&interLife, "intermediate-lifetime", "5y", "intermediate validity")
	fl.StringVar(&o.TrustDomain, "trust-domain", o.TrustDomain, "fleet name in device identities spiffe://DOMAIN/device/NAME")
	fl.StringSliceVar(&o.URLs.CRL, "crl-url", nil, "CRL distribution point baked into issued certificates (repeatable)")
	fl.StringSliceVar(&o.URLs.OCSP, "ocsp-url", nil, "OCSP responder URL baked into issued certificates (repeatable)")
	fl.StringSliceVar(&o.URLs.Issuer, "issuer-url", nil, "AIA caIssuers URL baked into issued certificates (repeatable)")
	fl.StringVar(&o.ExportRoot, "export-root", "", "write the root key to this file instead of DIR/private, to move it offline")
	fl.BoolVar(&noPassphrase, "no-passphrase", false, "store the CA keys unencrypted (unsafe; for throwaway CAs)")
	return c
}

func initCA(ctx context.Context, f *caFlags, o ca.InitOptions, stdout, stderr io.Writer) (err error) {
	undo := undoCreate(f.dir, o.ExportRoot)
	defer func() {
		if err != nil {
			undo()
		}
	}()
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("creating CA directory: %w", err)
	}
	st, err := sqlite.Open(ctx, ca.Layout{Dir: f.dir}.DB())
	if err != nil {
		return err
	}
	defer st.Close()
	opts, audit, err := f.options(stderr)
	if err != nil {
		return err
	}
	defer audit.Close()
	a, err := ca.Init(ctx, f.dir, st, o, opts)
	if err != nil {
		return err
	}
	l := a.Layout()
	fmt.Fprintf(stdout, "CA created in %s\n  root:         %s (%s, until %s)\n", f.dir, l.RootCert(), a.Root().Subject.CommonName, a.Root().NotAfter.Format(time.DateOnly))
	if !o.RootOnly {
		fmt.Fprintf(stdout, "  intermediate: %s (%s, until %s)\n", l.IntermediateCert(), a.Issuer().Subject.CommonName, a.Issuer().NotAfter.Format(time.DateOnly))
	}
	fmt.Fprintf(stdout, "  trust bundle: %s\n  CRL:          %s\n", l.Bundle(), l.CRL())
	if o.ExportRoot != "" {
		fmt.Fprintf(stdout, "  root key:     %s (move it offline; it is not in %s)\n", o.ExportRoot, l.PrivateDir())
	}
	return nil
}

// undoCreate notes which CA files exist now and returns a function that
// removes every one created since, so a failed init or import leaves the
// directory as it was.
func undoCreate(dir string, extra ...string) func() {
	l := ca.Layout{Dir: dir}
	paths := append([]string{l.DB(), l.DB() + "-wal", l.DB() + "-shm", l.Audit(), l.Config(), l.RootCert(),
		l.IntermediateCert(), l.Bundle(), l.CRL(), l.RootKey(), l.IntermediateKey(), l.IssuedDir(), l.PrivateDir(), dir}, extra...)
	existed := map[string]bool{}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			existed[p] = true
		}
	}
	return func() {
		for _, p := range paths {
			if p != "" && !existed[p] {
				os.RemoveAll(p)
			}
		}
	}
}
