package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with --debug-addr
	"strconv"
	"strings"
	"time"

	"openconsole"
	"openconsole/admin"
	"openconsole/api"
	"openconsole/sqlstore"
)

func cmdServe(e *cliEnv, args []string) int {
	fs := e.flags("serve")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	sessionTTL := fs.Duration("session-ttl", 0, "idle timeout of a session (0: none)")
	tokenTTL := fs.Duration("token-ttl", 24*time.Hour, "lifetime of a login JWT")
	maxConns := fs.Int("db-max-conns", 0, "database connections (default: SQLite 8 readers, PostgreSQL a pool of 16)")
	stmtTimeout := fs.Duration("db-statement-timeout", 10*time.Second, "PostgreSQL statement timeout")
	connTimeout := fs.Duration("db-connect-timeout", 5*time.Second, "PostgreSQL connect timeout")
	shutdownTimeout := fs.Duration("shutdown-timeout", 15*time.Second, "how long SIGTERM waits for requests in flight")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof profiles on this address (keep it private; default: off)")
	adminAddr := fs.String("admin-addr", "", "serve the admin web console and the operator API only on this address, not on --addr (default: both on --addr)")
	auditKeyFile := fs.String("audit-key-file", "", "sign the audit log's checkpoints with the key in this file, kept away from the database (openconsole audit keygen writes one; default: a key held in the database)")
	offlineKeyFile := fs.String("offline-key-file", "", "sign offline certificates with the key in this file, kept away from the database (openconsole offline keygen writes one; default: a key held in the database)")
	limits := openconsole.DefaultLimits
	fs.Func("limit-activation", limitUsage("activations with an unknown key or serial, per client address", limits.ActivationFailuresPerAddr),
		limitFlag(&limits.ActivationFailuresPerAddr))
	fs.Func("limit-login-user", limitUsage("failed logins per username", limits.LoginFailuresPerUser), limitFlag(&limits.LoginFailuresPerUser))
	fs.Func("limit-login-addr", limitUsage("failed logins per client address", limits.LoginFailuresPerAddr), limitFlag(&limits.LoginFailuresPerAddr))
	fs.IntVar(&limits.IPv6Prefix, "limit-ipv6-prefix", limits.IPv6Prefix, "the abuse limits count IPv6 client addresses by this prefix length (1 to 128)")
	maxPasswordChecks := fs.Int("max-password-checks", 0, "password checks (argon2id, 19 MiB each) run at once; more logins wait up to 1s, then get 503 (default: twice the CPUs)")
	clientIPHeader := fs.String("client-ip-header", "", "behind a proxy: take the client address from the last value of this header (e.g. X-Forwarded-For)")
	maxInFlight := fs.Int("max-in-flight", 4096, "requests to the device routes (activate, validate, manifests, tokens) served at once; more are answered 503 (0: no bound)")
	maxInFlightWeb := fs.Int("max-in-flight-web", 512, "requests to every other console route (login, catalogue, reviews, user routes) served at once, apart from the device routes; more are answered 503 (0: no bound)")
	var apiOpts []api.Option
	fs.Func("default-store", "store id whose products /api/v2/products lists when a request names none (default: every store)", func(v string) error {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 0 {
			return errors.New("want a store id, a non-negative integer")
		}
		apiOpts = append(apiOpts, api.WithDefaultStore(id))
		return nil
	})
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *tokenTTL <= 0 || *tokenTTL > 365*24*time.Hour {
		return e.usageErr("--token-ttl must be between 1s and 8760h")
	}
	if limits.IPv6Prefix < 1 || limits.IPv6Prefix > 128 {
		return e.usageErr("--limit-ipv6-prefix must be between 1 and 128")
	}
	if *maxPasswordChecks < 0 {
		return e.usageErr("--max-password-checks must not be negative")
	}
	if *sessionTTL < 0 {
		return e.usageErr("--session-ttl must not be negative")
	}
	var auditKey string
	if *auditKeyFile != "" {
		k, err := readAuditKeyFile(*auditKeyFile)
		if err != nil {
			return e.fail(err)
		}
		auditKey = k
	}
	var offlineKey string
	if *offlineKeyFile != "" {
		k, err := readKeyFile("offline-key-file", *offlineKeyFile)
		if err != nil {
			return e.fail(err)
		}
		offlineKey = k
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	e.create = true
	svc, st, closeAll, err := e.open(
		sqlstore.Options{MaxConns: *maxConns, StatementTimeout: *stmtTimeout, ConnectTimeout: *connTimeout},
		openconsole.Options{SessionTTL: *sessionTTL, TokenTTL: *tokenTTL, Logger: log, Limits: &limits, AuditKey: auditKey,
			MaxPasswordChecks: *maxPasswordChecks, OfflineKey: offlineKey})
	if err != nil {
		return e.fail(err)
	}
	defer closeAll()
	for _, f := range sqlstore.ExposedFiles(e.dsn()) {
		log.Warn("other users may read this database file, which holds password hashes, signing keys and license keys: chmod 600 it",
			"file", f.Path, "mode", fmt.Sprintf("%04o", f.Mode))
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return e.fail(err)
	}
	console := api.New(svc, log, append(apiOpts, api.WithClientIPHeader(*clientIPHeader), api.WithMaxInFlight(*maxInFlight), api.WithMaxInFlightWeb(*maxInFlightWeb))...)
	web := admin.NewWeb(svc, log, admin.WebClientIPHeader(*clientIPHeader))
	operator := admin.New(svc, log, admin.WithClientIPHeader(*clientIPHeader), admin.WithAuthenticator(web.Authenticator()))
	var adminSrv *http.Server
	var adminLn net.Listener
	handler := mainHandler(console, operator, web)
	if *adminAddr != "" {
		if adminLn, err = net.Listen("tcp", *adminAddr); err != nil {
			ln.Close()
			return e.fail(err)
		}
		handler = mainHandler(console, nil, nil)
		adminSrv = newHTTPServer(mainHandler(nil, operator, web), log)
	}
	srv := newHTTPServer(handler, log)
	if *debugAddr != "" {
		// pprof registers on http.DefaultServeMux, which nothing else here uses.
		go func() {
			log.Warn("debug server stopped", "err", http.ListenAndServe(*debugAddr, http.DefaultServeMux))
		}()
	}
	sock, err := serveAdminSocket(e.dsn(), operator, log)
	if err != nil {
		return e.fail(err)
	}
	log.Info("openconsole listening", "addr", ln.Addr().String(), "db", redactDSN(e.dsn()), "engine", st.Engine())
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if adminSrv != nil {
		log.Info("admin console and operator API listening", "addr", adminLn.Addr().String())
		go func() { errc <- adminSrv.Serve(adminLn) }()
	}
	select {
	case err := <-errc:
		return e.fail(err)
	case <-e.ctx.Done():
	}
	// Stop accepting, let requests in flight finish, then write out pending state and close the
	// database (deferred above).
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
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

// mainHandler serves the operator API under its prefix, the admin web console under its, and the
// FLECS Console API everywhere else. A nil handler is not served: its paths answer 404 (with
// --admin-addr the device listener serves no admin path, and the admin listener only those).
func mainHandler(console, operator, web http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
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

// limitFlag parses BURST,PER_MINUTE into l.
func limitFlag(l *openconsole.Limit) func(string) error {
	return func(v string) error {
		if v == "0" {
			*l = openconsole.Limit{}
			return nil
		}
		b, r, ok := strings.Cut(v, ",")
		burst, err1 := strconv.Atoi(strings.TrimSpace(b))
		rate, err2 := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if !ok || err1 != nil || err2 != nil || burst < 0 || rate < 0 {
			return fmt.Errorf("want BURST,PER_MINUTE such as 30,30 (or 0 to disable)")
		}
		*l = openconsole.Limit{Burst: burst, PerMinute: rate}
		return nil
	}
}
