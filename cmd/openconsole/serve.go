package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with --debug-addr
	"os"
	"strconv"
	"strings"
	"time"

	"openconsole"
	"openconsole/admin"
	"openconsole/api"
	"openconsole/metrics"
	"openconsole/sqlstore"
)

// serveConfig is serve's configuration. serveFlags is its one table: each setting is a flag there,
// and so also a config-file key and an OPENCONSOLE_ environment variable (config.go).
type serveConfig struct {
	addr, adminAddr, debugAddr     string
	sessionTTL, tokenTTL           time.Duration
	maxConns                       int
	stmtTimeout, connTimeout       time.Duration
	shutdownTimeout, readyDeadline time.Duration
	auditKeyFile, offlineKeyFile   string
	limits                         openconsole.Limits
	clientIPHeader                 string
	maxInFlight, maxInFlightWeb    int
	maxPasswordChecks              int
	defaultStore                   storeIDFlag
	tlsCert, tlsKey                string
	logFormat                      string
	logLevel                       slog.Level
	metrics, accessLog             bool
	configFile                     string
	printConfig                    bool
}

// serveFlags declares serve's flags on fs. Add a setting here, with one line.
func serveFlags(fs *flag.FlagSet) *serveConfig {
	c := &serveConfig{limits: openconsole.DefaultLimits}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.DurationVar(&c.sessionTTL, "session-ttl", 0, "idle timeout of a session (0: none)")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 24*time.Hour, "lifetime of a login JWT")
	fs.IntVar(&c.maxConns, "db-max-conns", 0, "database connections (default: SQLite 8 readers, PostgreSQL a pool of 16)")
	fs.DurationVar(&c.stmtTimeout, "db-statement-timeout", 10*time.Second, "PostgreSQL statement timeout")
	fs.DurationVar(&c.connTimeout, "db-connect-timeout", 5*time.Second, "PostgreSQL connect timeout")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long SIGTERM waits for requests in flight")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (keep it private; default: off)")
	fs.StringVar(&c.adminAddr, "admin-addr", "", "serve the admin web console, the operator API and /metrics only on this address, not on --addr (default: all on --addr)")
	fs.StringVar(&c.auditKeyFile, "audit-key-file", "", "sign the audit log's checkpoints with the key in this file, kept away from the database (openconsole audit keygen writes one; default: a key held in the database)")
	fs.StringVar(&c.offlineKeyFile, "offline-key-file", "", "sign offline certificates with the key in this file, kept away from the database (openconsole offline keygen writes one; default: a key held in the database)")
	fs.Var(limitValue{&c.limits.ActivationFailuresPerAddr}, "limit-activation", limitUsage("activations with an unknown key or serial, per client address", c.limits.ActivationFailuresPerAddr))
	fs.Var(limitValue{&c.limits.LoginFailuresPerUser}, "limit-login-user", limitUsage("failed logins per username", c.limits.LoginFailuresPerUser))
	fs.Var(limitValue{&c.limits.LoginFailuresPerAddr}, "limit-login-addr", limitUsage("failed logins per client address", c.limits.LoginFailuresPerAddr))
	fs.IntVar(&c.limits.IPv6Prefix, "limit-ipv6-prefix", c.limits.IPv6Prefix, "the abuse limits count IPv6 client addresses by this prefix length (1 to 128)")
	fs.IntVar(&c.maxPasswordChecks, "max-password-checks", 0, "password checks (argon2id, 19 MiB each) run at once; more logins wait up to 1s, then get 503 (default: twice the CPUs)")
	fs.StringVar(&c.clientIPHeader, "client-ip-header", "", "behind a proxy: take the client address from the last value of this header (e.g. X-Forwarded-For), and keep the proxy's X-Request-Id")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 4096, "requests to the device routes (activate, validate, manifests, tokens) served at once; more are answered 503 (0: no bound)")
	fs.IntVar(&c.maxInFlightWeb, "max-in-flight-web", 512, "requests to every other console route (login, catalogue, reviews, user routes) served at once, apart from the device routes; more are answered 503 (0: no bound)")
	fs.Var(&c.defaultStore, "default-store", "store id whose products /api/v2/products lists when a request names none (default: every store)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS (and HTTP/2) with the certificate chain in this PEM file; reloaded when it changes (with --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the private key of --tls-cert, a PEM file")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log level: debug, info (one access-log line per request), warn or error")
	fs.BoolVar(&c.accessLog, "access-log", true, "log one line per request at info level")
	fs.BoolVar(&c.metrics, "metrics", true, "serve Prometheus metrics at /metrics (on --admin-addr when set, else on --addr) and count them")
	fs.DurationVar(&c.readyDeadline, "ready-timeout", 2*time.Second, "how long /readyz waits for the database to answer")
	fs.StringVar(&c.configFile, "config", "", "read settings from this TOML file: keys are these flags' names (env OPENCONSOLE_CONFIG)")
	fs.BoolVar(&c.printConfig, "print-config", false, "print the effective configuration (secrets masked) as a config file, and exit")
	return c
}

// check refuses settings that parse but make no sense.
func (c *serveConfig) check() error {
	switch {
	case c.tokenTTL <= 0 || c.tokenTTL > 365*24*time.Hour:
		return errors.New("--token-ttl must be between 1s and 8760h")
	case c.sessionTTL < 0:
		return errors.New("--session-ttl must not be negative")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.logFormat != "text" && c.logFormat != "json":
		return errors.New("--log-format must be text or json")
	case c.limits.IPv6Prefix < 1 || c.limits.IPv6Prefix > 128:
		return errors.New("--limit-ipv6-prefix must be between 1 and 128")
	case c.maxPasswordChecks < 0:
		return errors.New("--max-password-checks must not be negative")
	case c.readyDeadline <= 0:
		return errors.New("--ready-timeout must be positive")
	}
	return nil
}

// logger is the server's logger, as --log-format and --log-level say.
func (c *serveConfig) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.logLevel}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdServe(e *cliEnv, args []string) int {
	fs := e.flags("serve")
	c := serveFlags(fs)
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if c.configFile == "" {
		c.configFile = os.Getenv(envName("config"))
	}
	settings, err := applyConfig(fs, c.configFile, os.LookupEnv, &e.db)
	if err != nil {
		return e.usageErr("%s", scrubSecrets(err.Error(), e.dsn()))
	}
	if err := c.check(); err != nil {
		return e.usageErr("%s", err)
	}
	if c.printConfig {
		if err := printConfig(e.stdout, settings); err != nil {
			return e.fail(err)
		}
		return 0
	}
	var auditKey string
	if c.auditKeyFile != "" {
		k, err := readKeyFile("audit-key-file", c.auditKeyFile)
		if err != nil {
			return e.fail(err)
		}
		auditKey = k
	}
	var offlineKey string
	if c.offlineKeyFile != "" {
		k, err := readKeyFile("offline-key-file", c.offlineKeyFile)
		if err != nil {
			return e.fail(err)
		}
		offlineKey = k
	}
	log := c.logger(e.stderr)
	var certs *certReloader
	if c.tlsCert != "" {
		if certs, err = newCertReloader(c.tlsCert, c.tlsKey, log); err != nil {
			return e.fail(err)
		}
	}
	e.create = true
	svc, st, closeAll, err := e.open(
		sqlstore.Options{MaxConns: c.maxConns, StatementTimeout: c.stmtTimeout, ConnectTimeout: c.connTimeout},
		openconsole.Options{SessionTTL: c.sessionTTL, TokenTTL: c.tokenTTL, Logger: log, Limits: &c.limits, AuditKey: auditKey,
			MaxPasswordChecks: c.maxPasswordChecks, OfflineKey: offlineKey})
	if err != nil {
		return e.fail(err)
	}
	defer closeAll()
	for _, f := range sqlstore.ExposedFiles(e.dsn()) {
		log.Warn("other users may read this database file, which holds password hashes, signing keys and license keys: chmod 600 it",
			"file", f.Path, "mode", fmt.Sprintf("%04o", f.Mode))
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return e.fail(err)
	}
	var apiOpts []api.Option
	if id, ok := c.defaultStore.get(); ok {
		apiOpts = append(apiOpts, api.WithDefaultStore(id))
	}
	console := api.New(svc, log, append(apiOpts, api.WithClientIPHeader(c.clientIPHeader), api.WithMaxInFlight(c.maxInFlight), api.WithMaxInFlightWeb(c.maxInFlightWeb))...)
	web := admin.NewWeb(svc, log, admin.WebClientIPHeader(c.clientIPHeader))
	operator := admin.New(svc, log, admin.WithClientIPHeader(c.clientIPHeader), admin.WithAuthenticator(web.Authenticator()))
	var m *metrics.Metrics
	if c.metrics {
		m = metrics.New(metrics.Sources{Service: svc, Overloaded: console.Overloaded, Store: st, PasswordQueue: svc.PasswordQueue}, log)
		m.Prepare(console.Routes()...)
		m.Prepare("/healthz", "/readyz", "/metrics")
		m.Start()
		defer m.Close()
	}
	hc := newHealth(st.Ready, c.readyDeadline, log)
	accessLog := log
	if !c.accessLog {
		accessLog = slog.New(slog.DiscardHandler)
	}
	observe := func(h http.Handler) http.Handler { return newObserver(h, accessLog, m, c.clientIPHeader) }
	ops := &opsHandlers{health: hc, metrics: m}
	var adminSrv *http.Server
	var adminLn net.Listener
	handler := mainHandler(console, operator, web, ops)
	if c.adminAddr != "" {
		if adminLn, err = net.Listen("tcp", c.adminAddr); err != nil {
			ln.Close()
			return e.fail(err)
		}
		handler = mainHandler(console, nil, nil, &opsHandlers{health: hc})
		adminSrv = newHTTPServer(observe(mainHandler(nil, operator, web, ops)), log)
	}
	srv := newHTTPServer(observe(handler), log)
	if certs != nil {
		srv.TLSConfig = tlsConfig(certs)
		if adminSrv != nil {
			adminSrv.TLSConfig = tlsConfig(certs)
		}
	}
	if c.debugAddr != "" {
		// pprof registers on http.DefaultServeMux, which nothing else here uses.
		go func() {
			log.Warn("debug server stopped", "err", http.ListenAndServe(c.debugAddr, http.DefaultServeMux))
		}()
	}
	sock, err := serveAdminSocket(e.dsn(), observe(operator), log)
	if err != nil {
		return e.fail(err)
	}
	scheme := "http"
	if certs != nil {
		scheme = "https"
	}
	log.Info("openconsole listening", "addr", ln.Addr().String(), "scheme", scheme, "db", redactDSN(e.dsn()), "engine", st.Engine())
	serve := func(s *http.Server, l net.Listener) error {
		if certs != nil {
			return s.ServeTLS(l, "", "")
		}
		return s.Serve(l)
	}
	errc := make(chan error, 2)
	go func() { errc <- serve(srv, ln) }()
	if adminSrv != nil {
		log.Info("admin console and operator API listening", "addr", adminLn.Addr().String(), "scheme", scheme)
		go func() { errc <- serve(adminSrv, adminLn) }()
	}
	select {
	case err := <-errc:
		return e.fail(err)
	case <-e.ctx.Done():
	}
	// Stop accepting, let requests in flight finish, then write out pending state and close the
	// database (deferred above). Health checks answer 503 from here on.
	log.Info("shutting down")
	hc.shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown", "err", err)
	}
	if adminSrv != nil {
		if err := adminSrv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("shutdown", "err", err)
		}
	}
	sock.close(sctx)
	return 0
}

// maxHeaderBytes is the documented bound on a request's line and headers. net/http reads up to
// MaxHeaderBytes plus headerSlack (4 KiB of bufio slack) before it answers 431, so MaxHeaderBytes
// is set that much lower for the bound to be what docs/security.md says.
const (
	maxHeaderBytes = 16 << 10
	headerSlack    = 4 << 10
)

// newHTTPServer is an HTTP server with the timeouts and limits every listener has.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes - headerSlack,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// opsHandlers are the operational endpoints: health checks on every listener, and /metrics
// where metrics is set (the admin listener, or the only one).
type opsHandlers struct {
	health  *health
	metrics *metrics.Metrics // nil: no /metrics here
}

// mainHandler serves the health checks and /metrics (ops), the operator API under its prefix, the
// admin web console under its, and the FLECS Console API everywhere else. A nil handler is not
// served: its paths answer 404 (with --admin-addr the device listener serves no admin path, and
// the admin listener only those). The operational paths lie outside /api, so the console API's
// routing and its 404 and 405 answers are untouched.
func mainHandler(console, operator, web http.Handler, ops *opsHandlers) http.Handler {
	var metricsHandler http.Handler
	if ops != nil && ops.metrics != nil {
		metricsHandler = ops.metrics.Handler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/healthz" && ops != nil:
			ops.health.healthz(w, r)
			return
		case p == "/readyz" && ops != nil:
			ops.health.readyz(w, r)
			return
		case p == "/metrics" && metricsHandler != nil:
			setRoute(w, "/metrics")
			metricsHandler.ServeHTTP(w, r)
			return
		case p == admin.Prefix || strings.HasPrefix(p, admin.Prefix+"/"):
			if operator != nil {
				operator.ServeHTTP(w, r)
				return
			}
		case p == admin.WebPrefix || strings.HasPrefix(p, admin.WebPrefix+"/"):
			if web != nil {
				web.ServeHTTP(w, r)
				return
			}
		default:
			if console != nil {
				console.ServeHTTP(w, r)
				return
			}
		}
		if console != nil {
			console.ServeHTTP(w, r) // its 404, in its envelope
			return
		}
		http.NotFound(w, r)
	})
}

func limitUsage(what string, def openconsole.Limit) string {
	return fmt.Sprintf("abuse limit on %s: BURST,PER_MINUTE (0 disables; default %d,%g)", what, def.Burst, def.PerMinute)
}

// limitValue is a flag.Value of an abuse limit: BURST,PER_MINUTE, or 0 to disable it.
type limitValue struct{ l *openconsole.Limit }

func (v limitValue) String() string {
	if v.l == nil {
		return ""
	}
	if v.l.Burst == 0 {
		return "0"
	}
	return fmt.Sprintf("%d,%g", v.l.Burst, v.l.PerMinute)
}

func (v limitValue) Set(s string) error {
	if s == "0" {
		*v.l = openconsole.Limit{}
		return nil
	}
	b, r, ok := strings.Cut(s, ",")
	burst, err1 := strconv.Atoi(strings.TrimSpace(b))
	rate, err2 := strconv.ParseFloat(strings.TrimSpace(r), 64)
	if !ok || err1 != nil || err2 != nil || burst < 0 || rate < 0 {
		return fmt.Errorf("want BURST,PER_MINUTE such as 30,30 (or 0 to disable)")
	}
	*v.l = openconsole.Limit{Burst: burst, PerMinute: rate}
	return nil
}

// storeIDFlag is an optional store id.
type storeIDFlag struct {
	id  int64
	set bool
}

func (f *storeIDFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatInt(f.id, 10)
}

func (f *storeIDFlag) Set(v string) error {
	if v == "" {
		f.id, f.set = 0, false // every store, as when unset (a printed config says so)
		return nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return errors.New("want a store id, a non-negative integer")
	}
	f.id, f.set = id, true
	return nil
}

func (f *storeIDFlag) get() (int64, bool) { return f.id, f.set }
