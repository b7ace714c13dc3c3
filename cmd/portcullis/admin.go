package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/apiclient"
)

// adminCtx is what every admin subcommand shares.
type adminCtx struct {
	api     apiFlags
	jsonOut bool
}

func (a *adminCtx) run(fn func(ctx context.Context, c *apiclient.Client, out io.Writer) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, _ []string) error {
		cl, err := a.api.client(true)
		if err != nil {
			return err
		}
		return fn(c.Context(), cl, c.OutOrStdout())
	}
}

// print writes v as JSON with --json, else the table.
func (a *adminCtx) print(out io.Writer, v any, table func(w *tabwriter.Writer)) error {
	if a.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func newAdminCmd() *cobra.Command {
	a := &adminCtx{}
	c := &cobra.Command{
		Use:   "admin",
		Short: "Administer the control server: requests, devices, certificates, tokens, stats",
		Long: `Administer the control server over its API with an admin client certificate
(--cert/--key, or --bundle with --password-file). Tables by default, --json for
scripts.`,
	}
	a.api.register(c, true)
	c.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print JSON")
	c.AddCommand(adminRequestsCmd(a), adminDevicesCmd(a), adminCertsCmd(a), adminTokensCmd(a), adminStatsCmd(a))
	return c
}

func requestsTable(w *tabwriter.Writer, reqs []apiclient.Request) {
	fmt.Fprintln(w, "ID\tSTATE\tHOSTNAME\tOS\tSERIAL\tOWNER\tCREATED\tDECIDED BY")
	for _, r := range reqs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Facts.Hostname, r.Facts.OS,
			r.Facts.HardwareSerial, r.Facts.OwnerEmail, when(r.CreatedAt), r.DecidedBy)
	}
}

func adminRequestsCmd(a *adminCtx) *cobra.Command {
	c := &cobra.Command{Use: "requests", Short: "The approval queue"}
	var f apiclient.RequestFilter
	list := &cobra.Command{Use: "list", Short: "List requests (default: pending)", Args: exactArgs(0, "no arguments"),
		RunE: a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
			reqs, next, err := cl.Requests(ctx, f)
			if err != nil {
				return err
			}
			return a.print(out, map[string]any{"requests": reqs, "next": next}, func(w *tabwriter.Writer) {
				requestsTable(w, reqs)
				if next != "" {
					fmt.Fprintf(w, "more: --after %s\n", next)
				}
			})
		})}
	list.Flags().StringVar(&f.State, "state", "pending", "pending, approved, denied, issued, or empty for all")
	list.Flags().StringVar(&f.After, "after", "", "continue after this request ID")
	list.Flags().IntVar(&f.Limit, "limit", 0, "page size (default 100, at most 1000)")
	c.AddCommand(list, decideCmd(a, true), decideCmd(a, false))
	return c
}

func decideCmd(a *adminCtx, approve bool) *cobra.Command {
	var comment, hostname string
	verb := map[bool]string{true: "approve", false: "deny"}[approve]
	c := &cobra.Command{
		Use:   verb + " [ID...]",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " pending requests by ID, or all pending ones of --hostname",
		RunE: func(c *cobra.Command, ids []string) error {
			if (len(ids) == 0) == (hostname == "") {
				return usageError{fmt.Errorf("give request IDs or --hostname (not both)")}
			}
			cl, err := a.api.client(true)
			if err != nil {
				return err
			}
			ctx := c.Context()
			if hostname != "" {
				for after := ""; ; {
					reqs, next, err := cl.Requests(ctx, apiclient.RequestFilter{State: "pending", After: after, Limit: 1000})
					if err != nil {
						return err
					}
					for _, r := range reqs {
						if strings.EqualFold(r.Facts.Hostname, hostname) {
							ids = append(ids, r.ID)
						}
					}
					if after = next; next == "" {
						break
					}
				}
				if len(ids) == 0 {
					return fmt.Errorf("no pending request from hostname %q", hostname)
				}
			}
			var done []*apiclient.Request
			var errs []error
			for _, id := range ids {
				r, err := cl.Decide(ctx, id, approve, comment)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", id, err))
					continue
				}
				done = append(done, r)
			}
			out := c.OutOrStdout()
			if err := a.print(out, done, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tSTATE\tHOSTNAME\tDEVICE\tCERTIFICATE")
				for _, r := range done {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Facts.Hostname, r.Device, r.CertSerial)
				}
			}); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().StringVar(&comment, "comment", "", "why (shown to the device when denying)")
	c.Flags().StringVar(&hostname, "hostname", "", "decide every pending request from this hostname")
	return c
}

func devicesTable(w *tabwriter.Writer, devs []apiclient.Device) {
	fmt.Fprintln(w, "ID\tNAME\tSTATE\tOS\tSERIAL\tOWNER\tAGENT\tLAST SEEN")
	for _, d := range devs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Name, d.State, d.OS, d.HardwareSerial, d.Owner, d.AgentVersion, when(d.LastSeen))
	}
}

func certsTable(w *tabwriter.Writer, certs []apiclient.Cert) {
	fmt.Fprintln(w, "SERIAL\tNAME\tPROFILE\tSTATUS\tNOT AFTER\tREVOKED")
	for _, c := range certs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, c.Name, c.Profile, c.Status, when(c.NotAfter), when(c.RevokedAt))
	}
}

func adminDevicesCmd(a *adminCtx) *cobra.Command {
	c := &cobra.Command{Use: "devices", Short: "The device inventory"}
	var (
		f        apiclient.DeviceFilter
		csvOut   bool
		seenDays int
	)
	list := &cobra.Command{Use: "list", Short: "List devices", Args: exactArgs(0, "no arguments"),
		RunE: a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
			if seenDays > 0 {
				f.LastSeenBefore = time.Now().Add(-time.Duration(seenDays) * 24 * time.Hour)
			}
			if csvOut {
				return cl.DevicesCSV(ctx, f, out)
			}
			devs, next, err := cl.Devices(ctx, f)
			if err != nil {
				return err
			}
			return a.print(out, map[string]any{"devices": devs, "next": next}, func(w *tabwriter.Writer) {
				devicesTable(w, devs)
				if next != "" {
					fmt.Fprintf(w, "more: --after %s\n", next)
				}
			})
		})}
	fl := list.Flags()
	fl.StringVar(&f.State, "state", "", "pending, active or revoked")
	fl.StringVar(&f.OS, "os", "", "operating system")
	fl.StringVar(&f.Owner, "owner", "", "owner's e-mail")
	fl.StringVar(&f.Name, "name", "", "device name")
	fl.IntVar(&seenDays, "not-seen-days", 0, "only devices not seen for this many days")
	fl.StringVar(&f.After, "after", "", "continue after this device ID")
	fl.IntVar(&f.Limit, "limit", 0, "page size (default 100, at most 1000)")
	fl.BoolVar(&csvOut, "csv", false, "print CSV")
	show := &cobra.Command{Use: "show ID", Short: "A device and its certificates", Args: exactArgs(1, "a device ID"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
				d, err := cl.Device(ctx, args[0])
				if err != nil {
					return err
				}
				return a.print(out, d, func(w *tabwriter.Writer) {
					devicesTable(w, []apiclient.Device{*d})
					fmt.Fprintln(w)
					certsTable(w, d.Certificates)
				})
			})(c, args)
		}}
	var reason string
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke a device and all its certificates", Args: exactArgs(1, "a device ID"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
				d, serials, err := cl.RevokeDevice(ctx, args[0], reason)
				if err != nil {
					return err
				}
				return a.print(out, map[string]any{"device": d, "revoked_serials": serials}, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "device %s is %s; revoked certificates: %s\n", d.ID, d.State, strings.Join(serials, ", "))
				})
			})(c, args)
		}}
	revoke.Flags().StringVar(&reason, "reason", "", "RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, …")
	logs := &cobra.Command{Use: "logs ID [LOG]", Short: "List a device's uploaded logs, or print one", Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			return a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
				if len(args) == 2 {
					id, err := strconv.ParseInt(args[1], 10, 64)
					if err != nil {
						return usageError{fmt.Errorf("log %q: want the number from the list", args[1])}
					}
					return cl.DeviceLog(ctx, args[0], id, out)
				}
				logs, err := cl.DeviceLogs(ctx, args[0])
				if err != nil {
					return err
				}
				return a.print(out, logs, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "LOG\tNAME\tRECEIVED\tBYTES")
					for _, l := range logs {
						fmt.Fprintf(w, "%d\t%s\t%s\t%d\n", l.ID, l.Name, when(l.ReceivedAt), l.Size)
					}
				})
			})(c, args)
		}}
	c.AddCommand(list, show, revoke, logs)
	return c
}

func adminCertsCmd(a *adminCtx) *cobra.Command {
	c := &cobra.Command{Use: "certs", Short: "Certificates"}
	var (
		f      apiclient.CertFilter
		format string
	)
	listOrExport := func(export bool) func(context.Context, *apiclient.Client, io.Writer) error {
		return func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
			if export && format == "csv" {
				return cl.CertsCSV(ctx, f, out)
			}
			certs, err := cl.Certs(ctx, f)
			if err != nil {
				return err
			}
			if export {
				a.jsonOut = true
			}
			return a.print(out, certs, func(w *tabwriter.Writer) { certsTable(w, certs) })
		}
	}
	flags := func(cmd *cobra.Command) {
		fl := cmd.Flags()
		fl.StringVar(&f.Status, "status", "", "active, superseded or revoked")
		fl.StringVar(&f.Profile, "profile", "", "device, client, server, …")
		fl.StringVar(&f.Name, "name", "", "certificate name (a device ID for devices)")
		fl.DurationVar(&f.ExpiringWithin, "expiring-within", 0, "only those expiring within this long (e.g. 720h)")
	}
	list := &cobra.Command{Use: "list", Short: "List certificates", Args: exactArgs(0, "no arguments"), RunE: a.run(listOrExport(false))}
	flags(list)
	export := &cobra.Command{Use: "export", Short: "Export the certificate inventory as CSV or JSON", Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "csv" && format != "json" {
				return usageError{fmt.Errorf("--format %q: want csv or json", format)}
			}
			return a.run(listOrExport(true))(c, args)
		}}
	flags(export)
	export.Flags().StringVar(&format, "format", "csv", "csv or json")
	var reason string
	revoke := &cobra.Command{Use: "revoke SERIAL", Short: "Revoke one certificate", Args: exactArgs(1, "a serial"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
				cert, err := cl.RevokeCert(ctx, args[0], reason)
				if err != nil {
					return err
				}
				return a.print(out, cert, func(w *tabwriter.Writer) { certsTable(w, []apiclient.Cert{*cert}) })
			})(c, args)
		}}
	revoke.Flags().StringVar(&reason, "reason", "", "RFC 5280 reason name")
	c.AddCommand(list, export, revoke)
	return c
}

func adminTokensCmd(a *adminCtx) *cobra.Command {
	c := &cobra.Command{Use: "tokens", Short: "Bootstrap tokens (one-time auto-approval)"}
	var (
		ttl         time.Duration
		name, owner string
	)
	create := &cobra.Command{Use: "create", Short: "Make a token; its secret is shown once", Args: exactArgs(0, "no arguments"),
		RunE: a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
			t, err := cl.CreateToken(ctx, ttl, name, owner)
			if err != nil {
				return err
			}
			return a.print(out, t, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "token %s (expires %s): %s\n", t.ID, when(t.ExpiresAt), t.Secret)
			})
		})}
	create.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default from the server's enroll.token_ttl)")
	create.Flags().StringVar(&name, "name", "", "only a device of this name may use it")
	create.Flags().StringVar(&owner, "owner", "", "only a device of this owner may use it")
	list := &cobra.Command{Use: "list", Short: "List tokens (never their secrets)", Args: exactArgs(0, "no arguments"),
		RunE: a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
			toks, err := cl.Tokens(ctx)
			if err != nil {
				return err
			}
			return a.print(out, toks, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tCREATED BY\tEXPIRES\tBOUND NAME\tBOUND OWNER\tUSED\tREVOKED")
				for _, t := range toks {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.CreatedBy, when(t.ExpiresAt), t.BoundName, t.BoundOwner, when(t.UsedAt), when(t.RevokedAt))
				}
			})
		})}
	revoke := &cobra.Command{Use: "revoke ID", Short: "Make a token unusable", Args: exactArgs(1, "a token ID"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
				if err := cl.RevokeToken(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(out, "token %s revoked\n", args[0])
				return nil
			})(c, args)
		}}
	c.AddCommand(create, list, revoke)
	return c
}

func adminStatsCmd(a *adminCtx) *cobra.Command {
	return &cobra.Command{Use: "stats", Short: "Devices and requests by state, certificates expiring", Args: exactArgs(0, "no arguments"),
		RunE: a.run(func(ctx context.Context, cl *apiclient.Client, out io.Writer) error {
			st, err := cl.Stats(ctx)
			if err != nil {
				return err
			}
			return a.print(out, st, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "WHAT\tCOUNT")
				for _, s := range []string{"pending", "active", "revoked"} {
					fmt.Fprintf(w, "devices %s\t%d\n", s, st.Devices[s])
				}
				for _, s := range []string{"pending", "approved", "denied", "issued"} {
					fmt.Fprintf(w, "requests %s\t%d\n", s, st.Requests[s])
				}
				fmt.Fprintf(w, "certificates expiring within 7 days\t%d\n", st.ExpiringWithin7d)
				fmt.Fprintf(w, "certificates expiring within 30 days\t%d\n", st.ExpiringWithin30d)
			})
		})}
}
