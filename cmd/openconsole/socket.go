package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"openconsole"
	"openconsole/admin"
)

// adminSocket is the local admin socket of a server on a SQLite database: the operator API on a
// Unix socket next to the database file, mode 0600. Whoever may open it (the server's user, and
// root) is an administrator without a token, as whoever may open the database file is; a change
// made through it is recorded with the caller's operating-system user.
type adminSocket struct {
	path string
	srv  *http.Server
}

// serveAdminSocket starts the admin socket for the database at dsn; it does nothing for
// PostgreSQL. A socket left behind by a server that died is replaced; one that a running server
// answers on is left to it (this server then has none, and says so).
func serveAdminSocket(dsn string, h http.Handler, log *slog.Logger) (*adminSocket, error) {
	path := socketPath(dsn)
	if path == "" {
		if !isPostgres(dsn) {
			log.Warn("no local admin socket: the database path is too long for a Unix socket; use --server with a token")
		}
		return &adminSocket{}, nil
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		log.Warn("no local admin socket: another server answers on it", "socket", path)
		return &adminSocket{}, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// Created 0600 from the start: no moment in which another user could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			name := peerUser(c)
			return admin.WithPrincipal(ctx, openconsole.Principal{
				Actor: openconsole.Actor{Kind: openconsole.ActorSocket, Name: name},
				Role:  openconsole.RoleAdmin, Scope: "socket:" + name})
		},
	}
	go srv.Serve(ln)
	return &adminSocket{path: path, srv: srv}, nil
}

// close stops the socket and removes its file.
func (a *adminSocket) close(ctx context.Context) {
	if a.srv == nil {
		return
	}
	a.srv.Shutdown(ctx)
	os.Remove(a.path)
}

// peerUser names the operating-system user at the other end of a Unix socket connection.
func peerUser(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "unknown"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "unknown"
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return "unknown"
	}
	if u, err := user.LookupId(strconv.Itoa(int(cred.Uid))); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(int(cred.Uid))
}
