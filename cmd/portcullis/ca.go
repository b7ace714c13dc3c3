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
	case errors.Is(err, keystore.ErrNoTerminal):
		return fmt.Errorf("%w: use --passphrase-file or $%s", err, passphraseEnv)
	case errors.Is(err, ca.ErrRootOnlyExport):
		return fmt.Errorf("%w (--export-root with --root-only)", err)
	case errors.Is(err, ca.ErrNoKey):
		return fmt.Errorf("%w; --rekey, --with-key and --p12 need it: have its holder send a new CSR to `portcullis ca sign`", err)
	case errors.Is(err, ca.ErrCRLNotPublished):
		return fmt.Errorf("%w (run `portcullis ca crl` once it is fixed)", err)
	case errors.Is(err, ca.ErrNotInitialized):
		return fmt.Errorf("%w (--dir names the CA directory, default ./pki; `make run` keeps its CA in ./portcullis-data; `portcullis ca init --dir %s` creates one)", err, f.dir)
	}
	return err
}

// passphraseSource is where a CA passphrase comes from: --passphrase-file,
// else $PORTCULLIS_CA_PASSPHRASE, else a terminal prompt.
func (f *caFlags) passphraseSource(prompt string, confirm bool) keystore.Passphrase {
	return keystore.Source{File: f.passphraseFile, Env: passphraseEnv, Prompt: prompt, Confirm: confirm}.Passphrase()
}

// passphrase returns the source of the existing CA passphrase, asked at
// most once.
func (f *caFlags) passphrase() keystore.Passphrase {
	return keystore.Once(f.passphraseSource("CA key passphrase", false))
}

// newPassphrase obtains the passphrase for keys about to be encrypted; ca
// checks its length.
func (f *caFlags) newPassphrase(noPassphrase bool, stderr io.Writer) ([]byte, error) {
	if !noPassphrase {
		return f.passphraseSource("New CA key passphrase", true)()
	}
	if f.passphraseFile != "" {
		return nil, usageError{errors.New("--no-passphrase and --passphrase-file exclude each other")}
	}
	fmt.Fprintln(stderr, "WARNING: --no-passphrase: the CA private keys will be stored UNENCRYPTED.")
	fmt.Fprintln(stderr, "WARNING: anyone who can read "+f.layout().PrivateDir()+" can issue certificates your fleet trusts.")
	return nil, nil
}

func (f *caFlags) layout() ca.Layout { return ca.Layout{Dir: f.dir} }

// session is a CA directory's store and audit log, and the CA once opened.
type session struct {
	*ca.Authority
	st    *sqlite.Store
	audit *obs.AuditLog
	opts  ca.Options
}

func (s *session) Close() {
	if s.st != nil {
		s.st.Close()
	}
	if s.audit != nil {
		s.audit.Close()
	}
}

// openSession opens the store and the audit log in --dir, and builds the
// CA options.
func (f *caFlags) openSession(ctx context.Context, stderr io.Writer) (*session, error) {
	log, err := obs.NewLogger(stderr, "text", "warn")
	if err != nil {
		return nil, err
	}
	s := &session{}
	if s.st, err = sqlite.Open(ctx, f.layout().DB()); err != nil {
		return nil, err
	}
	if s.audit, err = obs.OpenAuditLog(f.layout().Audit()); err != nil {
		s.Close()
		return nil, err
	}
	s.opts = ca.Options{Passphrase: f.passphrase(), Logger: log, Audit: s.audit.Logger(), Actor: actor()}
	return s, nil
}

// withCA opens the CA in --dir, runs fn on it and closes it. Every
// subcommand on an existing CA goes through here.
func (f *caFlags) withCA(c *cobra.Command, fn func(s *session) error) error {
	// Before the store: opening it would create portcullis.db.
	if !ca.Exists(f.dir) {
		return fmt.Errorf("%s: %w", f.dir, ca.ErrNotInitialized)
	}
	s, err := f.openSession(c.Context(), c.ErrOrStderr())
	if err != nil {
		return err
	}
	defer s.Close()
	if s.Authority, err = ca.Open(c.Context(), f.dir, s.st, s.opts); err != nil {
		return err
	}
	return fn(s)
}

// withNewCA prepares --dir for a new CA, which fn creates with the
// session's store and options, and removes every file it made (extra
// names more, outside the directory) if anything fails. `ca init` and
// `ca import-easyrsa` go through here.
func (f *caFlags) withNewCA(c *cobra.Command, extra []string, fn func(s *session) error) (err error) {
	if ca.Exists(f.dir) {
		return fmt.Errorf("%s: %w", f.dir, ca.ErrExists)
	}
	undo := f.layout().Rollback(extra...)
	defer func() {
		if err != nil {
			undo()
		}
	}()
	if err := f.layout().Create(); err != nil {
		return err
	}
	s, err := f.openSession(c.Context(), c.ErrOrStderr())
	if err != nil {
		return err
	}
	// Closed before undo runs: the deferred calls run in reverse.
	defer s.Close()
	return fn(s)
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
			return f.withNewCA(c, []string{o.ExportRoot}, func(s *session) error {
				if o.Passphrase, err = f.newPassphrase(noPassphrase, c.ErrOrStderr()); err != nil {
					return err
				}
				a, err := ca.Init(c.Context(), f.dir, s.st, o, s.opts)
				if err != nil {
					return err
				}
				printInit(c.OutOrStdout(), a, o)
				return nil
			})
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

func printInit(w io.Writer, a *ca.Authority, o ca.InitOptions) {
	l := a.Layout()
	fmt.Fprintf(w, "CA created in %s\n  root:         %s (%s, until %s)\n", l.Dir, l.RootCert(), a.Root().Subject.CommonName, a.Root().NotAfter.Format(time.DateOnly))
	if !o.RootOnly {
		fmt.Fprintf(w, "  intermediate: %s (%s, until %s)\n", l.IntermediateCert(), a.Issuer().Subject.CommonName, a.Issuer().NotAfter.Format(time.DateOnly))
	}
	fmt.Fprintf(w, "  trust bundle: %s\n  CRL:          %s\n", l.Bundle(), l.CRL())
	if o.ExportRoot != "" {
		fmt.Fprintf(w, "  root key:     %s (move it offline; it is not in %s)\n", o.ExportRoot, l.PrivateDir())
	}
}
