// Command loadgen drives the tunnel benchmark (scripts/bench-tunnel.sh). It
// is both ends around a proxy: plaintext backends (sink, echod), an mTLS
// backend for the Go crypto/tls baseline (tlsecho), and the clients that
// measure bulk throughput, full mTLS handshakes, request/response latency
// and idle connections. Each client prints one JSON line; report turns the
// script's records (those lines plus /proc samples) into one table.
//
// The client is a plain crypto/tls client on purpose: it measures the
// proxies, so it must not share their code.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var commands = map[string]func(args []string) error{
	"sink": runSink, "echod": runEchod, "tlsecho": runTLSEcho,
	"bulk": runBulk, "handshake": runHandshake, "echo": runEcho, "idle": runIdle,
	"ports": runPorts, "report": runReport,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, `usage: loadgen COMMAND [flags]
backends:  sink -listen A | echod -listen A | tlsecho -listen A -cert C -key K -cacert CA [-sink]
clients:   bulk -conns N [-bytes B] [-d D] | handshake -c N -d D | idle -n N
           echo -size 1024 [-n N] [-d D] [-new-conn] [-read full|once] [-warmup N] [-think D]
           (clients: -target A, and -cert -key -cacert for mTLS or -plain for raw TCP)
tools:     ports -n N (free 127.0.0.1 ports) | report < records.jsonl (markdown table)`)
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// emit prints one result line.
func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

// ---- backends ----

func runSink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	fs.Parse(args)
	return serve(*listen, nil, discard)
}

func runEchod(args []string) error {
	fs := flag.NewFlagSet("echod", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	fs.Parse(args)
	return serve(*listen, nil, echo)
}

// runTLSEcho is the Go crypto/tls baseline: the same echo (or sink) behind
// a mutual-TLS listener, with Go's defaults, as a service would embed it.
func runTLSEcho(args []string) error {
	fs := flag.NewFlagSet("tlsecho", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	certF, keyF, caF := fs.String("cert", "", "certificate chain"), fs.String("key", "", "key"), fs.String("cacert", "", "client CA")
	sink := fs.Bool("sink", false, "discard instead of echoing")
	fs.Parse(args)
	cert, err := tls.LoadX509KeyPair(*certF, *keyF)
	if err != nil {
		return err
	}
	pool, err := loadPool(*caF)
	if err != nil {
		return err
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool, MinVersion: tls.VersionTLS12}
	h := echo
	if *sink {
		h = discard
	}
	return serve(*listen, conf, h)
}

func serve(addr string, conf *tls.Config, h func(net.Conn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: back off
			continue
		}
		go func() {
			defer c.Close()
			if conf != nil {
				tc := tls.Server(c, conf)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				tc.SetDeadline(time.Time{})
				c = tc
			}
			h(c)
		}()
	}
}

func echo(c net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func discard(c net.Conn) {
	io.CopyBuffer(io.Discard, c, make([]byte, 64<<10))
}

// ---- clients ----

// client dials the target, over mTLS unless plain. Sessions are never
// resumed: no cache, no tickets, so every dial is a full handshake.
type client struct {
	target string
	conf   *tls.Config
	d      net.Dialer
}

func clientFlags(fs *flag.FlagSet) func() (*client, error) {
	target := fs.String("target", "", "address to connect to")
	plain := fs.Bool("plain", false, "raw TCP, no TLS")
	certF, keyF, caF := fs.String("cert", "", "client certificate chain"), fs.String("key", "", "client key"), fs.String("cacert", "", "CA of the server")
	sni := fs.String("server-name", "localhost", "server name to send and verify")
	curves := fs.String("curves", "", "comma-separated key exchanges to offer (x25519, p256, x25519mlkem768); empty: Go's defaults")
	return func() (*client, error) {
		c := &client{target: *target}
		if *target == "" {
			return nil, errors.New("-target is required")
		}
		if *plain {
			return c, nil
		}
		cert, err := tls.LoadX509KeyPair(*certF, *keyF)
		if err != nil {
			return nil, err
		}
		pool, err := loadPool(*caF)
		if err != nil {
			return nil, err
		}
		c.conf = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: *sni,
			MinVersion: tls.VersionTLS12, SessionTicketsDisabled: true}
		for _, name := range strings.Split(*curves, ",") {
			id, ok := map[string]tls.CurveID{"x25519": tls.X25519, "p256": tls.CurveP256, "x25519mlkem768": tls.X25519MLKEM768}[name]
			if !ok && name != "" {
				return nil, fmt.Errorf("unknown curve %q", name)
			}
			if ok {
				c.conf.CurvePreferences = append(c.conf.CurvePreferences, id)
			}
		}
		return c, nil
	}
}

func (c *client) dial(ctx context.Context) (net.Conn, error) {
	raw, err := c.d.DialContext(ctx, "tcp", c.target)
	if err != nil {
		return nil, err
	}
	if c.conf == nil {
		return raw, nil
	}
	tc := tls.Client(raw, c.conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		abort(raw)
		return nil, err
	}
	return tc, nil
}

// ping sends one byte and waits for it to come back: in TLS 1.3 the client
// finishes its handshake before the server has checked the client
// certificate, so only a round trip proves the proxy accepted it and
// reached the backend.
func ping(c net.Conn) error {
	b := []byte{'x'}
	if _, err := c.Write(b); err != nil {
		return err
	}
	_, err := io.ReadFull(c, b)
	return err
}

// abort closes with SO_LINGER 0: an RST instead of a FIN leaves no
// TIME-WAIT socket behind, so a handshake loop cannot exhaust loopback
// ports.
func abort(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if t, ok := c.(*net.TCPConn); ok {
		t.SetLinger(0)
	}
	c.Close()
}

// bulk writes to a sink over N connections for -d (or -bytes each), then
// half-closes and waits for the far end to close: the clock stops when the
// last byte has gone through.
func runBulk(args []string) error {
	fs := flag.NewFlagSet("bulk", flag.ExitOnError)
	mk := clientFlags(fs)
	conns := fs.Int("conns", 1, "parallel streams")
	limit := fs.Int64("bytes", 0, "bytes per stream (0: until -d)")
	d := fs.Duration("d", 5*time.Second, "how long to send")
	chunk := fs.Int("chunk", 64<<10, "write size")
	fs.Parse(args)
	c, err := mk()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *d+60*time.Second)
	defer cancel()
	cs := make([]net.Conn, *conns)
	for i := range cs {
		if cs[i], err = c.dial(ctx); err != nil {
			return err
		}
	}
	var total atomic.Int64
	errs := make([]error, len(cs))
	start := time.Now()
	end := start.Add(*d)
	var wg sync.WaitGroup
	for i, conn := range cs {
		wg.Go(func() {
			defer conn.Close()
			buf := make([]byte, *chunk)
			var n int64
			for (*limit == 0 || n < *limit) && time.Now().Before(end) {
				w, err := conn.Write(buf)
				n += int64(w)
				if err != nil {
					errs[i] = err
					break
				}
			}
			total.Add(n)
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("waiting for the far end to close: %w", err)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	err = errors.Join(errs...)
	emit(map[string]any{"op": "bulk", "conns": *conns, "bytes": total.Load(), "secs": secs,
		"mib_s": float64(total.Load()) / secs / (1 << 20), "error": errString(err)})
	return nil
}

// handshake runs -c loops of: connect, full mTLS handshake, 1-byte round
// trip, abortive close; it counts the loops completed in -d.
func runHandshake(args []string) error {
	fs := flag.NewFlagSet("handshake", flag.ExitOnError)
	mk := clientFlags(fs)
	conc := fs.Int("c", 8, "concurrent connection loops")
	d := fs.Duration("d", 5*time.Second, "duration")
	fs.Parse(args)
	c, err := mk()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*d)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range *conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				conn, err := c.dial(ctx)
				if err == nil {
					conn.SetDeadline(time.Now().Add(10 * time.Second))
					err = ping(conn)
					abort(conn)
				}
				if err == nil {
					ok.Add(1)
					continue
				}
				if ctx.Err() != nil || time.Now().After(deadline) {
					return // cut by the end of the run, not a failure
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fe, _ := firstErr.Load().(string)
	emit(map[string]any{"op": "handshake", "c": *conc, "ok": ok.Load(), "errors": failed.Load(), "secs": secs,
		"rate": float64(ok.Load()) / secs, "error": fe})
	return nil
}

// echo measures request/response latency, one request at a time: on one
// kept connection, or on a new connection each (connect + full handshake +
// exchange).
func runEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	mk := clientFlags(fs)
	size := fs.Int("size", 1024, "request and response size")
	n := fs.Int("n", 0, "requests (0: until -d)")
	d := fs.Duration("d", 5*time.Second, "duration cap")
	newConn := fs.Bool("new-conn", false, "a new connection for each request")
	read := fs.String("read", "full", "how the answer is read: full (io.ReadFull of -size bytes) or once (one Read call, whatever it returns)")
	warmup := fs.Int("warmup", 1, "kept connection: exchanges before the first sample (the server side finishes its handshake)")
	think := fs.Duration("think", 0, "pause between requests (0: the next request as soon as the answer is in)")
	fs.Parse(args)
	c, err := mk()
	if err != nil {
		return err
	}
	if *read != "full" && *read != "once" {
		return fmt.Errorf("-read %q: full or once", *read)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *d+30*time.Second)
	defer cancel()
	req, resp := make([]byte, *size), make([]byte, *size)
	var short int // -read once: answers that came back in more than one Read
	exchange := func(conn net.Conn) error {
		if _, err := conn.Write(req); err != nil {
			return err
		}
		if *read == "once" {
			m, err := conn.Read(resp)
			if err == nil && m < len(resp) {
				short++
				_, err = io.ReadFull(conn, resp[m:]) // keep the stream in step
			}
			return err
		}
		_, err := io.ReadFull(conn, resp)
		return err
	}
	var kept net.Conn
	if !*newConn {
		if kept, err = c.dial(ctx); err != nil {
			return err
		}
		defer kept.Close()
		for range *warmup {
			if err := exchange(kept); err != nil {
				return err
			}
		}
	}
	var samples []time.Duration
	end := time.Now().Add(*d)
	for (*n == 0 || len(samples) < *n) && time.Now().Before(end) {
		if *think > 0 && len(samples) > 0 {
			time.Sleep(*think)
		}
		t := time.Now()
		conn := kept
		if conn == nil {
			if conn, err = c.dial(ctx); err != nil {
				break
			}
		}
		err = exchange(conn)
		if kept == nil {
			abort(conn)
		}
		if err != nil {
			break
		}
		samples = append(samples, time.Since(t))
	}
	slices.Sort(samples)
	us := func(q float64) float64 {
		if len(samples) == 0 {
			return 0
		}
		return float64(samples[min(len(samples)-1, int(q*float64(len(samples))))].Nanoseconds()) / 1e3
	}
	emit(map[string]any{"op": "echo", "size": *size, "new_conn": *newConn, "n": len(samples),
		"p50_us": us(0.50), "p90_us": us(0.90), "p99_us": us(0.99), "max_us": us(1), "short_reads": short,
		"error": errString(err)})
	return nil
}

// idle opens -n mTLS connections (each proven by a round trip), prints
// when they are all up, and holds them until SIGINT/SIGTERM.
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	mk := clientFlags(fs)
	n := fs.Int("n", 1000, "connections")
	conc := fs.Int("c", 16, "concurrent dials")
	fs.Parse(args)
	c, err := mk()
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conns := make([]net.Conn, *n)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range *conc {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < *n; i = int(next.Add(1) - 1) {
				conn, err := c.dial(ctx)
				if err == nil {
					conn.SetDeadline(time.Now().Add(30 * time.Second))
					if err = ping(conn); err == nil {
						conn.SetDeadline(time.Time{})
						conns[i] = conn
						continue
					}
					abort(conn)
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		})
	}
	wg.Wait()
	fe, _ := firstErr.Load().(string)
	emit(map[string]any{"op": "idle", "n": *n, "established": int64(*n) - failed.Load(), "errors": failed.Load(),
		"secs": time.Since(start).Seconds(), "error": fe})
	<-sig
	for _, conn := range conns {
		if conn != nil {
			abort(conn)
		}
	}
	return nil
}

// ports prints -n free loopback ports, found by binding 127.0.0.1:0 with
// all of them held at once so they differ.
func runPorts(args []string) error {
	fs := flag.NewFlagSet("ports", flag.ExitOnError)
	n := fs.Int("n", 1, "how many")
	fs.Parse(args)
	var out []string
	for range *n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		out = append(out, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificates", path)
	}
	return pool, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ---- report ----

// record is one line from the script: a loadgen result plus what /proc said
// about the proxy (for the baselines: the Go server) around it.
type record struct {
	Target   string         `json:"target"`
	Scenario string         `json:"scenario"`
	ClkTck   float64        `json:"clk_tck"`
	CPUTicks float64        `json:"cpu_ticks"`
	RSSKB    float64        `json:"rss_kb"`
	RSS0KB   float64        `json:"rss0_kb"`
	Resumed  *[2]float64    `json:"resumed"` // resumed, total upstream handshakes
	Res      map[string]any `json:"res"`
}

func (r record) num(k string) (float64, bool) {
	v, ok := r.Res[k].(float64)
	return v, ok
}

func (r record) cpuSecs() float64 { return r.CPUTicks / r.ClkTck }

var targets = []string{"raw", "gotls", "portcullis", "stunnel", "nginx"}

// metric is one row: how to read a figure from a record.
type metric struct {
	label, scenario, unit string
	fig                   func(record) (float64, bool)
	// fig2, if set, is a second figure shown next to the first ("p50 /
	// p99"), with its own ratios; the target checks only the first.
	fig2 func(record) (float64, bool)
	// lowerBetter: the ratio columns read "portcullis is faster" below 1.
	lowerBetter bool
	target      func(v map[string]float64) (string, bool, bool) // text, met, applicable
}

func field(k string, scale float64) func(record) (float64, bool) {
	return func(r record) (float64, bool) {
		v, ok := r.num(k)
		return v * scale, ok && v > 0
	}
}

func cpuPerGB(r record) (float64, bool) {
	b, ok := r.num("bytes")
	return r.cpuSecs() / (b / 1e9), ok && b > 0
}

func cpuPerConn(r record) (float64, bool) {
	n, ok := r.num("ok")
	return r.cpuSecs() / n * 1e6, ok && n > 0
}

var p50, p99 = field("p50_us", 1), field("p99_us", 1)

func rssMiB(r record) (float64, bool) { return r.RSSKB / 1024, r.RSSKB > 0 }

func kibPerConn(r record) (float64, bool) {
	n, ok := r.num("established")
	return (r.RSSKB - r.RSS0KB) / n, ok && n > 0 && r.RSSKB > 0
}

func resumedPct(r record) (float64, bool) {
	if r.Resumed == nil || r.Resumed[1] == 0 {
		return 0, false
	}
	return 100 * r.Resumed[0] / r.Resumed[1], true
}

// ratioAtLeast, ratioAtMost and atMost build the checks of the issue's
// targets on the portcullis figure.
func ratioAtLeast(peer string, x float64) func(map[string]float64) (string, bool, bool) {
	return func(v map[string]float64) (string, bool, bool) {
		p, q := v["portcullis"], v[peer]
		return fmt.Sprintf("≥%.2f× %s", x, peer), p >= x*q, p > 0 && q > 0
	}
}

func ratioAtMost(peer string, x float64) func(map[string]float64) (string, bool, bool) {
	return func(v map[string]float64) (string, bool, bool) {
		p, q := v["portcullis"], v[peer]
		return fmt.Sprintf("≤%.2f× %s", x, peer), p <= x*q, p > 0 && q > 0
	}
}

func atMost(x float64, unit string) func(map[string]float64) (string, bool, bool) {
	return func(v map[string]float64) (string, bool, bool) {
		p, ok := v["portcullis"]
		return fmt.Sprintf("≤%g %s", x, unit), p <= x, ok
	}
}

func both(a, b func(map[string]float64) (string, bool, bool)) func(map[string]float64) (string, bool, bool) {
	return func(v map[string]float64) (string, bool, bool) {
		ta, ma, oa := a(v)
		tb, mb, ob := b(v)
		return ta + ", " + tb, ma && mb, oa && ob
	}
}

var metrics = []metric{
	{label: "bulk, 1 stream", scenario: "bulk1", unit: "MiB/s", fig: field("mib_s", 1)},
	{label: "bulk, 1 stream: CPU", scenario: "bulk1", unit: "CPU-s/GB", fig: cpuPerGB, lowerBetter: true},
	{label: "bulk, 8 streams", scenario: "bulk8", unit: "MiB/s", fig: field("mib_s", 1), target: ratioAtLeast("stunnel", 1.25)},
	{label: "bulk, 8 streams: CPU", scenario: "bulk8", unit: "CPU-s/GB", fig: cpuPerGB, lowerBetter: true, target: atMost(0.9, "CPU-s/GB")},
	{label: "handshakes ECDSA c=8", scenario: "hs-ecdsa-8", unit: "/s", fig: field("rate", 1)},
	{label: "handshakes ECDSA c=8: CPU", scenario: "hs-ecdsa-8", unit: "µs/conn", fig: cpuPerConn, lowerBetter: true},
	{label: "handshakes ECDSA c=64", scenario: "hs-ecdsa-64", unit: "/s", fig: field("rate", 1),
		target: both(ratioAtLeast("nginx", 1.6), ratioAtLeast("stunnel", 3))},
	{label: "handshakes ECDSA c=64: CPU", scenario: "hs-ecdsa-64", unit: "µs/conn", fig: cpuPerConn, lowerBetter: true, target: atMost(400, "µs/conn")},
	{label: "handshakes ECDSA c=64, client offers X25519 only", scenario: "hs-ecdsa-64-x25519", unit: "/s", fig: field("rate", 1)},
	{label: "handshakes ECDSA c=64, X25519 only: CPU", scenario: "hs-ecdsa-64-x25519", unit: "µs/conn", fig: cpuPerConn, lowerBetter: true},
	{label: "handshakes RSA-2048 c=8", scenario: "hs-rsa-8", unit: "/s", fig: field("rate", 1)},
	{label: "handshakes RSA-2048 c=8: CPU", scenario: "hs-rsa-8", unit: "µs/conn", fig: cpuPerConn, lowerBetter: true},
	{label: "handshakes RSA-2048 c=64", scenario: "hs-rsa-64", unit: "/s", fig: field("rate", 1)},
	{label: "handshakes RSA-2048 c=64: CPU", scenario: "hs-rsa-64", unit: "µs/conn", fig: cpuPerConn, lowerBetter: true},
	{label: "1 KiB echo, kept conn, back to back: p50 / p99", scenario: "echo-kept", unit: "µs", fig: p50, fig2: p99, lowerBetter: true, target: ratioAtMost("stunnel", 0.45)},
	{label: "1 KiB echo, kept conn, X25519, 3 rounds: p50 / p99", scenario: "echo-kept-x25519", unit: "µs", fig: p50, fig2: p99, lowerBetter: true},
	{label: "1 KiB echo, kept conn, 1 ms between requests: p50 / p99", scenario: "echo-kept-gap", unit: "µs", fig: p50, fig2: p99, lowerBetter: true},
	{label: "1 KiB echo, new conn: p50 / p99", scenario: "echo-new", unit: "µs", fig: p50, fig2: p99, lowerBetter: true},
	{label: "idle 1,000 mTLS conns: RSS", scenario: "idle-1000", unit: "MiB", fig: rssMiB, lowerBetter: true},
	{label: "idle 1,000: RSS per conn", scenario: "idle-1000", unit: "KiB", fig: kibPerConn, lowerBetter: true},
	{label: "idle 5,000 mTLS conns: RSS", scenario: "idle-5000", unit: "MiB", fig: rssMiB, lowerBetter: true},
	{label: "idle 5,000: RSS per conn", scenario: "idle-5000", unit: "KiB", fig: kibPerConn, lowerBetter: true, target: atMost(20, "KiB/conn")},
	{label: "chain client→server: bulk, 8 streams", scenario: "chain-bulk8", unit: "MiB/s", fig: field("mib_s", 1), target: ratioAtLeast("stunnel", 1.3)},
	{label: "chain: bulk CPU (both proxies)", scenario: "chain-bulk8", unit: "CPU-s/GB", fig: cpuPerGB, lowerBetter: true},
	{label: "chain: 1 KiB echo, kept conn, back to back: p50 / p99", scenario: "chain-echo-kept", unit: "µs", fig: p50, fig2: p99, lowerBetter: true},
	{label: "chain: 1 KiB echo, kept conn, X25519, 3 rounds: p50 / p99", scenario: "chain-echo-kept-x25519", unit: "µs", fig: p50, fig2: p99, lowerBetter: true},
	{label: "chain: 1 KiB echo, kept conn, 1 ms between requests: p50 / p99", scenario: "chain-echo-kept-gap", unit: "µs", fig: p50, fig2: p99, lowerBetter: true},
	{label: "chain: 1 KiB echo, new conn: p50 / p99", scenario: "chain-echo-new", unit: "µs", fig: p50, fig2: p99, lowerBetter: true},
	{label: "chain: new conns c=8", scenario: "chain-conns", unit: "/s", fig: field("rate", 1)},
	{label: "chain: new conns: CPU (both proxies)", scenario: "chain-conns", unit: "µs/conn", fig: cpuPerConn, lowerBetter: true},
	{label: "chain: upstream handshakes resumed", scenario: "chain-conns", unit: "%", fig: resumedPct},
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	fs.Parse(args)
	rounds := map[[2]string][]record{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("record %q: %w", sc.Text(), err)
		}
		if r.ClkTck == 0 {
			r.ClkTck = 100
		}
		k := [2]string{r.Target, r.Scenario}
		rounds[k] = append(rounds[k], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	recs := map[[2]string]record{}
	for k, rs := range rounds {
		recs[k] = merge(rs)
	}
	fmt.Println("| figure | unit | raw TCP | Go crypto/tls | portcullis | stunnel | nginx | pc/stunnel | pc/nginx | target | |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|")
	var notes []string
	for _, m := range metrics {
		v, v2 := map[string]float64{}, map[string]float64{}
		cells := []string{m.label, m.unit}
		for _, t := range targets {
			r, ok := recs[[2]string{t, m.scenario}]
			f, fok := 0.0, false
			if ok {
				f, fok = m.fig(r)
				if e, _ := r.Res["error"].(string); e != "" && !slices.Contains(notes, t+" "+m.scenario+": "+e) {
					notes = append(notes, t+" "+m.scenario+": "+e)
				}
			}
			if !fok {
				cells = append(cells, "—")
				continue
			}
			v[t] = f
			cell := format(f)
			if m.fig2 != nil {
				f2, ok2 := m.fig2(r)
				cell += " / —"
				if ok2 {
					v2[t] = f2
					cell = format(f) + " / " + format(f2)
				}
			}
			cells = append(cells, cell)
		}
		ratio := func(v map[string]float64, peer string) string {
			if p, q := v["portcullis"], v[peer]; p > 0 && q > 0 {
				return fmt.Sprintf("%.2f×", p/q)
			}
			return "—"
		}
		for _, peer := range []string{"stunnel", "nginx"} {
			c := ratio(v, peer)
			if m.fig2 != nil {
				c += " / " + ratio(v2, peer)
			}
			cells = append(cells, c)
		}
		verdict, text := "", ""
		if m.target != nil {
			var met, applicable bool
			text, met, applicable = m.target(v)
			switch {
			case !applicable:
				verdict = "n/a"
			case met:
				verdict = "met"
			default:
				verdict = "**missed**"
			}
		}
		cells = append(cells, text, verdict)
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	fmt.Println("\nGB = 10⁹ bytes. \"p50 / p99\": the median over the rounds of each round's percentile; the ratios likewise." +
		" CPU = utime+stime from /proc/PID/stat of the proxy (nginx: master and workers;" +
		" chain: both proxies; baselines: the Go sink, echo or crypto/tls server) over the point." +
		" RSS per conn = (VmRSS with N idle connections − VmRSS before) / N." +
		" pc/peer above 1 is better for rates, below 1 for CPU, latency and memory.")
	for _, n := range notes {
		fmt.Println("\nerror: " + n)
	}
	return nil
}

// merge folds the rounds of one point into one record: counts, bytes,
// seconds and CPU add up (rates are recomputed from them), latency
// percentiles are the median of the rounds', RSS the largest seen.
func merge(rs []record) record {
	m := rs[0]
	m.Res = maps.Clone(m.Res)
	for _, r := range rs[1:] {
		m.CPUTicks += r.CPUTicks
		m.RSSKB, m.RSS0KB = max(m.RSSKB, r.RSSKB), max(m.RSS0KB, r.RSS0KB)
		if m.Resumed != nil && r.Resumed != nil {
			m.Resumed = &[2]float64{m.Resumed[0] + r.Resumed[0], m.Resumed[1] + r.Resumed[1]}
		}
		for k, v := range r.Res {
			f, ok := v.(float64)
			old, had := m.Res[k].(float64)
			switch {
			case !ok || !had:
				if e, _ := v.(string); k == "error" && e != "" {
					m.Res[k] = e
				}
			case k == "max_us":
				m.Res[k] = max(old, f)
			case strings.HasSuffix(k, "_us"): // percentiles: the median, below
			default:
				m.Res[k] = old + f
			}
		}
	}
	for k := range m.Res {
		if k != "max_us" && strings.HasSuffix(k, "_us") {
			var vs []float64
			for _, r := range rs {
				if f, ok := r.Res[k].(float64); ok {
					vs = append(vs, f)
				}
			}
			m.Res[k] = median(vs)
		}
	}
	n := float64(len(rs))
	for _, k := range []string{"c", "conns", "size"} {
		if v, ok := m.Res[k].(float64); ok {
			m.Res[k] = v / n
		}
	}
	if secs, ok := m.Res["secs"].(float64); ok && secs > 0 {
		if b, ok := m.Res["bytes"].(float64); ok {
			m.Res["mib_s"] = b / secs / (1 << 20)
		}
		if c, ok := m.Res["ok"].(float64); ok {
			m.Res["rate"] = c / secs
		}
	}
	return m
}

// median of the rounds' figures: one round disturbed by the rest of the
// machine moves it less than a mean (with two rounds it is their mean).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	h := len(vs) / 2
	if len(vs)%2 == 1 {
		return vs[h]
	}
	return (vs[h-1] + vs[h]) / 2
}

func format(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}
