package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/control"
)

func newServerCmd() *cobra.Command {
	var (
		configFile, data, listen, publicListen, publicURL, store string
		check                                                    bool
	)
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the control server: enrollment with approval, renewal, revocation, CRL/OCSP, inventory",
		Long: `Run the control server. Without --config it runs on the defaults, and on first
run creates in --data a CA, a server certificate and the first admin's certificate.
Flags override the file's settings. --check validates the configuration and exits.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			cfg := control.DefaultConfig()
			if configFile != "" {
				data, err := os.ReadFile(configFile)
				if err != nil {
					return err
				}
				if cfg, err = control.ParseConfig(data); err != nil {
					return fmt.Errorf("%s: %w", configFile, err)
				}
			}
			fl := c.Flags()
			for name, dst := range map[string]*string{"data": &cfg.Data, "listen": &cfg.Listen, "public-listen": &cfg.PublicListen,
				"public-url": &cfg.PublicURL, "store": &cfg.Store} {
				if fl.Changed(name) {
					*dst = map[string]string{"data": data, "listen": listen, "public-listen": publicListen, "public-url": publicURL, "store": store}[name]
				}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			if check {
				fmt.Fprintln(c.OutOrStdout(), "configuration OK")
				return nil
			}
			bin, _ := os.Executable()
			if rel, err := filepath.Rel(mustGetwd(), bin); err == nil && filepath.IsLocal(rel) {
				bin = "./" + rel
			}
			return control.Run(c.Context(), cfg, control.Options{Stdout: c.OutOrStdout(), Stderr: c.ErrOrStderr(), Binary: bin})
		},
	}
	fl := c.Flags()
	fl.StringVar(&configFile, "config", "", "server.yaml (see README: every setting)")
	fl.BoolVar(&check, "check", false, "validate the configuration and exit")
	fl.StringVar(&data, "data", "./portcullis-data", "directory of the CA, the store and the audit log")
	fl.StringVar(&listen, "listen", "127.0.0.1:8443", "HTTPS API address")
	fl.StringVar(&publicListen, "public-listen", "127.0.0.1:8080", "plain HTTP address for CRL, OCSP and health")
	fl.StringVar(&publicURL, "public-url", "", "URL relying parties use for CRL and OCSP (baked into certificates at CA creation)")
	fl.StringVar(&store, "store", "sqlite", "sqlite, or a postgres:// URL")
	return c
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return wd
}
