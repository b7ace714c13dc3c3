package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/agent"
	"github.com/portcullis-dev/portcullis/internal/apiclient"
	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// apiFlags reach a control server.
type apiFlags struct {
	server, cacert              string
	cert, key, bundle, passFile string
}

func (f *apiFlags) register(c *cobra.Command, withIdentity bool) {
	fl := c.Flags()
	if withIdentity {
		fl = c.PersistentFlags()
	}
	fl.StringVar(&f.server, "server", "", "control server URL (https://host:port)")
	fl.StringVar(&f.cacert, "cacert", "", "CA certificate the server is verified against (the server's ca.crt)")
	if withIdentity {
		fl.StringVar(&f.cert, "cert", "", "client certificate chain (PEM)")
		fl.StringVar(&f.key, "key", "", "client private key (PEM)")
		fl.StringVar(&f.bundle, "bundle", "", "client PKCS#12 bundle instead of --cert/--key")
		fl.StringVar(&f.passFile, "password-file", "", "file with the --bundle password")
	}
}

// client builds the API client; with identity the caller presents its
// certificate.
func (f *apiFlags) client(identity bool) (*apiclient.Client, error) {
	if f.server == "" || f.cacert == "" {
		return nil, usageError{errors.New("--server and --cacert are required")}
	}
	src := tlsconf.Source{CAFile: f.cacert, Anonymous: !identity}
	if identity {
		switch {
		case f.bundle != "":
			src.Keystore = f.bundle
			if f.passFile != "" {
				p, err := os.ReadFile(f.passFile)
				if err != nil {
					return nil, err
				}
				src.Storepass = trimNewline(string(p))
			}
		case f.cert != "" && f.key != "":
			src.CertFile, src.KeyFile = f.cert, f.key
		default:
			return nil, usageError{errors.New("--cert and --key, or --bundle, are required")}
		}
	}
	st, err := tlsconf.Load(src, nil)
	if err != nil {
		return nil, err
	}
	return apiclient.New(f.server, st.Roots(), st.Certificate())
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

func newEnrollCmd() *cobra.Command {
	var (
		f    apiFlags
		o    agent.EnrollOptions
		out  string
		wait time.Duration
	)
	c := &cobra.Command{
		Use:   "enroll",
		Short: "Ask the control server for a device certificate (key made here, never sent)",
		Long: `Make a key and a CSR in --out (reused on later runs), submit them with this
device's facts, and wait for an admin's approval (or a bootstrap --token) until
--wait runs out. Run it again to pick up a request already submitted. Writes
OUT/key.pem (0600) and OUT/cert.pem (the chain). Exit 0 when the certificate
is written or (with --wait 0) the request submitted, 3 when --wait ran out
with the request still waiting, 1 when denied or on error.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Facts.Hostname == "" {
				return usageError{errors.New("--name is required")}
			}
			if out == "" {
				out = o.Facts.Hostname
			}
			cl, err := f.client(false)
			if err != nil {
				return err
			}
			o.Facts.OS, o.Facts.AgentVersion = runtime.GOOS, versionString()
			o.Wait = wait
			o.Progress = func(s string) { fmt.Fprintln(c.ErrOrStderr(), s) }
			r, err := agent.Enroll(c.Context(), cl, agent.Dir(out), o)
			if errors.Is(err, agent.ErrStillPending) {
				fmt.Fprintf(c.OutOrStdout(), "request %s waits for approval; run this command again to collect the certificate\n", r.ID)
				if wait > 0 {
					return exitCode{3} // the wait ran out
				}
				return nil // submitted, as --wait 0 asked
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "enrolled as device %s: %s (key %s)\n", r.Device, agent.Dir(out).Cert(), agent.Dir(out).Key())
			return nil
		},
	}
	f.register(c, false)
	fl := c.Flags()
	fl.StringVar(&o.Facts.Hostname, "name", "", "this device's name (hostname)")
	fl.StringVar(&out, "out", "", "directory for the key, CSR and certificate (default: --name)")
	fl.StringVar(&o.Token, "token", "", "bootstrap token from an admin: approved at once")
	fl.StringVar(&o.Facts.HardwareSerial, "serial", "", "hardware serial number")
	fl.StringVar(&o.Facts.OSVersion, "os-version", "", "OS version")
	fl.StringVar(&o.Facts.OwnerEmail, "owner", "", "owner's e-mail")
	fl.DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for approval (0: submit and return)")
	return c
}

func newRenewCmd() *cobra.Command {
	var (
		f     apiFlags
		dir   string
		rekey bool
	)
	c := &cobra.Command{
		Use:   "renew",
		Short: "Renew this device's certificate over mTLS (same key, or --rekey)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{errors.New("--dir is required (the directory `portcullis enroll --out` wrote)")}
			}
			d := agent.Dir(dir)
			f.cert, f.key = d.Cert(), d.Key()
			cl, err := f.client(true)
			if err != nil {
				return err
			}
			out, err := agent.Renew(c.Context(), cl, d, rekey, versionString())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "renewed: serial %s until %s (%s)\n", out.Serial, out.NotAfter.Format(time.RFC3339), d.Cert())
			return nil
		},
	}
	f.register(c, false)
	c.Flags().StringVar(&dir, "dir", "", "enrollment directory (key.pem, cert.pem)")
	c.Flags().BoolVar(&rekey, "rekey", false, "make a new key and certify it")
	return c
}
