// Command ocdev is a device that licenses itself against a FLECS Console (OpenConsole or the
// real one) as FLECS Core does, and offline with OpenConsole's offline certificates. It keeps its
// state in a directory (--state) in FLECS Core's files.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"openconsole/client"
	"openconsole/client/offline"
)

// Exit codes, documented in docs/client.md.
const (
	exitOK          = 0 // done; validate: the session is valid
	exitFailure     = 1 // a local failure: state directory, files, an unexpected error
	exitUsage       = 2 // bad command line
	exitNotValid    = 3 // not activated, session not valid, or no valid offline certificate
	exitRefused     = 4 // the console refused (4xx); the reason is printed
	exitUnavailable = 5 // the console could not be reached, failed (5xx) or answered off-contract
	exitOffline     = 6 // an offline certificate was refused (signature, device, nonce, counter, time)
)

const usage = `Usage: ocdev COMMAND [FLAGS]

Every command takes --state DIR (default $OCDEV_STATE, else ./ocdev-state) and, when it talks to
a console, --server URL (default $OCDEV_SERVER, else https://console.flecs.tech).

Commands:
  activate [--key KEY | --serial SN | --token-file F]   (none: the stored license key)
  validate                          is the stored session valid? (exit 3 if not)
  status [--json]                   the stored license, session and offline certificate
  run [--key KEY | --serial SN | --token-file F] [--interval 60s] [--min-backoff 1s] [--max-backoff 5m]
                                    activate, then validate at the interval; back off on failure
  manifest APP VERSION              the app manifest (max_manifest_version 3.0.0)
  token APP VERSION                 registry credentials for the app ({} when none are needed)
  offline request --key KEY [--out FILE]        a signed offline request (default: stdout)
  offline install CERT (--pin VERIFIER | --pin-file F)
  offline deactivate [--out FILE]   give the certificate up; the proof frees its seat once
  offline status [--json]           exit 3 unless a certificate is valid at the trusted time

Exit codes: 0 ok, 1 local failure, 2 usage, 3 not valid, 4 refused by the console,
5 console unavailable, 6 offline certificate refused.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	clock          client.Clock // nil: the system clock
}

// Run runs ocdev with args (without the program name) and returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	return e.run(args)
}

func (e *env) run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	if cmd == "offline" {
		if len(rest) == 0 {
			return e.usageErr("offline needs a subcommand")
		}
		cmd, rest = "offline "+rest[0], rest[1:]
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	case "activate":
		return e.cmdActivate(rest)
	case "validate":
		return e.cmdValidate(rest)
	case "status":
		return e.cmdStatus(rest)
	case "run":
		return e.cmdRun(rest)
	case "manifest":
		return e.cmdManifest(rest)
	case "token":
		return e.cmdToken(rest)
	case "offline request":
		return e.cmdOfflineRequest(rest)
	case "offline install":
		return e.cmdOfflineInstall(rest)
	case "offline deactivate":
		return e.cmdOfflineDeactivate(rest)
	case "offline status":
		return e.cmdOfflineStatus(rest)
	}
	return e.usageErr("unknown command %q", cmd)
}

func (e *env) usageErr(format string, args ...any) int {
	fmt.Fprintf(e.stderr, "ocdev: "+format+"\n", args...)
	fmt.Fprint(e.stderr, "run 'ocdev help' for usage\n")
	return exitUsage
}

// fail prints err and maps it to an exit code.
func (e *env) fail(err error) int {
	fmt.Fprintf(e.stderr, "ocdev: %v\n", err)
	switch {
	case errors.Is(err, client.ErrOffline):
		return exitOffline
	case errors.Is(err, client.ErrNotActivated):
		return exitNotValid
	case errors.Is(err, client.ErrRefused):
		return exitRefused
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrProtocol):
		return exitUnavailable
	}
	return exitFailure
}

// cmdFlags is the flag set of one command, with --state and --server.
type cmdFlags struct {
	*flag.FlagSet
	state, server *string
	pos           []string // positional arguments
}

func (e *env) flags(name string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	st := os.Getenv("OCDEV_STATE")
	if st == "" {
		st = "ocdev-state"
	}
	srv := os.Getenv("OCDEV_SERVER")
	if srv == "" {
		srv = "https://console.flecs.tech"
	}
	return &cmdFlags{FlagSet: fs,
		state:  fs.String("state", st, "state directory"),
		server: fs.String("server", srv, "console base URL")}
}

// parse parses args, flags and positional arguments in any order, and wants exactly nargs
// positional arguments (-1: any); they are in f.pos.
func (f *cmdFlags) parse(e *env, args []string, nargs int) (int, bool) {
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK, false
			}
			return exitUsage, false
		}
		if f.NArg() == 0 {
			break
		}
		f.pos = append(f.pos, f.Arg(0))
		args = f.Args()[1:]
	}
	if nargs >= 0 && len(f.pos) != nargs {
		return e.usageErr("%s: want %d argument(s), got %d", f.Name(), nargs, len(f.pos)), false
	}
	return 0, true
}

func (e *env) client(f *cmdFlags) (*client.Client, error) {
	st, err := client.OpenState(*f.state)
	if err != nil {
		return nil, err
	}
	return &client.Client{BaseURL: *f.server, State: st, Warn: func(msg string) {
		fmt.Fprintf(e.stderr, "ocdev: warning: %s\n", msg)
	}}, nil
}

func (e *env) device(f *cmdFlags) (*client.Device, error) {
	st, err := client.OpenState(*f.state)
	if err != nil {
		return nil, err
	}
	return &client.Device{State: st, Clock: e.clock}, nil
}

func (e *env) printJSON(v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(e.stdout, "%s\n", b)
}

type credFlags struct{ key, serial, tokenFile *string }

func addCredFlags(f *cmdFlags) credFlags {
	return credFlags{
		key:       f.String("key", "", "license key (key mode)"),
		serial:    f.String("serial", "", "registered serial number (key mode with the serial)"),
		tokenFile: f.String("token-file", "", "file holding a console JWT (bearer mode)"),
	}
}

func (e *env) credentials(c credFlags) (client.Credentials, int, bool) {
	n := 0
	for _, s := range []string{*c.key, *c.serial, *c.tokenFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return client.Credentials{}, e.usageErr("give at most one of --key, --serial and --token-file"), false
	}
	cred := client.Credentials{Key: *c.key, Serial: *c.serial}
	if *c.tokenFile != "" {
		b, err := os.ReadFile(*c.tokenFile)
		if err != nil {
			return cred, e.fail(err), false
		}
		cred.Bearer = strings.TrimSpace(string(b))
		if cred.Bearer == "" {
			return cred, e.usageErr("--token-file %s is empty", *c.tokenFile), false
		}
	}
	return cred, 0, true
}

type sessionJSON struct {
	ID        string  `json:"id,omitempty"`
	Timestamp *uint64 `json:"timestamp,omitempty"`
}

func sessionOut(s client.Session) *sessionJSON {
	if !s.HasID {
		return nil
	}
	out := &sessionJSON{ID: s.ID}
	if s.HasTimestamp {
		ts := s.Timestamp
		out.Timestamp = &ts
	}
	return out
}

func (e *env) cmdActivate(args []string) int {
	f := e.flags("activate")
	cf := addCredFlags(f)
	if code, ok := f.parse(e, args, 0); !ok {
		return code
	}
	cred, code, ok := e.credentials(cf)
	if !ok {
		return code
	}
	c, err := e.client(f)
	if err != nil {
		return e.fail(err)
	}
	a, err := c.Activate(e.ctx, cred)
	if err != nil {
		return e.fail(err)
	}
	// Never the full key on output: its hint is enough to recognise it.
	e.printJSON(map[string]any{"new": a.New, "license": offline.LicenseHint(a.License), "session": sessionOut(a.Session)})
	return exitOK
}

func (e *env) cmdValidate(args []string) int {
	f := e.flags("validate")
	if code, ok := f.parse(e, args, 0); !ok {
		return code
	}
	c, err := e.client(f)
	if err != nil {
		return e.fail(err)
	}
	valid, err := c.Validate(e.ctx)
	if err != nil {
		return e.fail(err)
	}
	e.printJSON(map[string]bool{"valid": valid})
	if !valid {
		return exitNotValid
	}
	return exitOK
}

func (e *env) cmdManifest(args []string) int {
	f := e.flags("manifest")
	if code, ok := f.parse(e, args, 2); !ok {
		return code
	}
	c, err := e.client(f)
	if err != nil {
		return e.fail(err)
	}
	m, err := c.Manifest(e.ctx, f.pos[0], f.pos[1])
	if err != nil {
		return e.fail(err)
	}
	fmt.Fprintf(e.stdout, "%s\n", m)
	return exitOK
}

func (e *env) cmdToken(args []string) int {
	f := e.flags("token")
	if code, ok := f.parse(e, args, 2); !ok {
		return code
	}
	c, err := e.client(f)
	if err != nil {
		return e.fail(err)
	}
	tok, err := c.Token(e.ctx, f.pos[0], f.pos[1])
	if err != nil {
		return e.fail(err)
	}
	if tok == nil {
		e.printJSON(map[string]string{})
		return exitOK
	}
	e.printJSON(tok)
	return exitOK
}

func (e *env) cmdRun(args []string) int {
	f := e.flags("run")
	cf := addCredFlags(f)
	interval := f.Duration("interval", time.Minute, "time between validations")
	minB := f.Duration("min-backoff", time.Second, "first wait after a failure")
	maxB := f.Duration("max-backoff", 5*time.Minute, "longest wait after failures")
	if code, ok := f.parse(e, args, 0); !ok {
		return code
	}
	if *interval <= 0 || *minB <= 0 || *maxB < *minB {
		return e.usageErr("run: --interval and --min-backoff must be > 0 and --max-backoff >= --min-backoff")
	}
	cred, code, ok := e.credentials(cf)
	if !ok {
		return code
	}
	c, err := e.client(f)
	if err != nil {
		return e.fail(err)
	}
	enc := json.NewEncoder(e.stdout)
	err = c.Run(e.ctx, client.RunOptions{Credentials: cred, Interval: *interval, MinBackoff: *minB, MaxBackoff: *maxB,
		OnEvent: func(ev client.Event) { enc.Encode(ev) }})
	if err != nil {
		return e.fail(err)
	}
	return exitOK
}

// statusOut is ocdev status --json.
type statusOut struct {
	Valid       bool                  `json:"valid"`
	Mode        string                `json:"mode"` // offline (a valid certificate), online (a stored session), none
	License     string                `json:"license,omitempty"`
	Session     *sessionJSON          `json:"session,omitempty"`
	NotAfter    *time.Time            `json:"notAfter,omitempty"`
	TrustedTime time.Time             `json:"trustedTime"`
	Offline     *client.OfflineStatus `json:"offline"`
}

func (e *env) status(f *cmdFlags) (*statusOut, error) {
	d, err := e.device(f)
	if err != nil {
		return nil, err
	}
	off, err := d.Status()
	if err != nil {
		return nil, err
	}
	key, err := d.State.License()
	if err != nil {
		return nil, err
	}
	sess, err := d.State.Session()
	if err != nil {
		return nil, err
	}
	s := &statusOut{Valid: off.Valid, Mode: "none", License: offline.LicenseHint(key), Session: sessionOut(sess),
		TrustedTime: off.TrustedTime, Offline: off}
	switch {
	case off.Valid:
		s.Mode = "offline"
		na := off.NotAfter
		s.NotAfter = &na
	case sess.HasID && sess.ID != "":
		s.Mode = "online"
	}
	return s, nil
}

func (e *env) cmdStatus(args []string) int {
	f := e.flags("status")
	asJSON := f.Bool("json", false, "print JSON")
	if code, ok := f.parse(e, args, 0); !ok {
		return code
	}
	s, err := e.status(f)
	if err != nil {
		return e.fail(err)
	}
	if *asJSON {
		e.printJSON(s)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "mode:          %s\n", s.Mode)
	fmt.Fprintf(e.stdout, "license:       %s\n", orNone(s.License))
	if s.Session != nil {
		fmt.Fprintf(e.stdout, "session:       %s\n", s.Session.ID)
	} else {
		fmt.Fprintf(e.stdout, "session:       (none)\n")
	}
	e.printOffline(s.Offline)
	return exitOK
}

func (e *env) printOffline(o *client.OfflineStatus) {
	fmt.Fprintf(e.stdout, "offline valid: %v\n", o.Valid)
	if o.Installed {
		fmt.Fprintf(e.stdout, "not after:     %s\n", o.NotAfter.Format(time.RFC3339))
	}
	if o.Reason != "" {
		fmt.Fprintf(e.stdout, "reason:        %s\n", o.Reason)
	}
	fmt.Fprintf(e.stdout, "trusted time:  %s\n", o.TrustedTime.Format(time.RFC3339))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (e *env) writeOut(path string, b []byte) error {
	if path == "" || path == "-" {
		_, err := e.stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func (e *env) cmdOfflineRequest(args []string) int {
	f := e.flags("offline request")
	key := f.String("key", "", "license key (sent as its SHA-256 only)")
	out := f.String("out", "", "file to write the request to (default: stdout)")
	if code, ok := f.parse(e, args, 0); !ok {
		return code
	}
	if strings.TrimSpace(*key) == "" {
		return e.usageErr("offline request: --key is required")
	}
	d, err := e.device(f)
	if err != nil {
		return e.fail(err)
	}
	msg, err := d.Request(*key)
	if err != nil {
		return e.fail(err)
	}
	if err := e.writeOut(*out, msg); err != nil {
		return e.fail(err)
	}
	return exitOK
}

func (e *env) cmdOfflineInstall(args []string) int {
	f := e.flags("offline install")
	pin := f.String("pin", "", "the console's certificate verifier key (openconsole offline key)")
	pinFile := f.String("pin-file", "", "file holding the verifier key")
	if code, ok := f.parse(e, args, 1); !ok {
		return code
	}
	pos := f.pos
	if (*pin == "") == (*pinFile == "") {
		return e.usageErr("offline install: give one of --pin and --pin-file")
	}
	if *pinFile != "" {
		b, err := os.ReadFile(*pinFile)
		if err != nil {
			return e.fail(err)
		}
		*pin = strings.TrimSpace(string(b))
	}
	var cert []byte
	var err error
	if pos[0] == "-" {
		cert, err = io.ReadAll(io.LimitReader(e.stdin, offline.MaxSize+1))
	} else {
		cert, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return e.fail(err)
	}
	d, err := e.device(f)
	if err != nil {
		return e.fail(err)
	}
	c, err := d.Install(cert, *pin)
	if err != nil {
		return e.fail(err)
	}
	e.printJSON(map[string]any{"installed": true, "license": c.LicenseHint, "counter": c.Counter,
		"notBefore": c.NotBefore, "notAfter": c.NotAfter, "session": c.SessionID})
	return exitOK
}

func (e *env) cmdOfflineDeactivate(args []string) int {
	f := e.flags("offline deactivate")
	out := f.String("out", "", "file to write the deactivation proof to (default: stdout)")
	if code, ok := f.parse(e, args, 0); !ok {
		return code
	}
	d, err := e.device(f)
	if err != nil {
		return e.fail(err)
	}
	path := *out
	if path == "-" {
		path = ""
	}
	proof, err := d.Deactivate(path)
	if err != nil {
		return e.fail(err)
	}
	if path == "" {
		e.stdout.Write(proof)
	}
	return exitOK
}

func (e *env) cmdOfflineStatus(args []string) int {
	f := e.flags("offline status")
	asJSON := f.Bool("json", false, "print JSON")
	if code, ok := f.parse(e, args, 0); !ok {
		return code
	}
	d, err := e.device(f)
	if err != nil {
		return e.fail(err)
	}
	s, err := d.Status()
	if err != nil {
		return e.fail(err)
	}
	if *asJSON {
		e.printJSON(s)
	} else {
		e.printOffline(s)
	}
	if !s.Valid {
		return exitNotValid
	}
	return exitOK
}
