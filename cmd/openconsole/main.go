// Command openconsole is OpenConsole in one binary: the FLECS Console server (serve) and the admin
// CLI, which work on the same database and may run at the same time.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"openconsole"
	"openconsole/metrics"
	"openconsole/sqlstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `Usage: openconsole [--db DSN] [--server URL [--token-file FILE]] COMMAND [FLAGS]

The database is chosen by --db or OPENCONSOLE_DB: sqlite:PATH (or a plain path) or
postgres://USER:PASS@HOST:PORT/DB; the default is ./openconsole.db. Only serve and init create a
database that does not exist.

Admin commands go to the operator API: of the server named by --server (or OPENCONSOLE_SERVER),
with an API token from --token-file or OPENCONSOLE_TOKEN; else of the server running on the
database, through its local admin socket; else of this process, on the database itself.

Commands:
  serve [FLAGS]                       (openconsole serve --help lists them)
  version                             the module version, VCS commit and time, Go version
  init                                create the database (and its schema)
  user create --username U (--password P | --password-stdin) [--email E] [--display-name N]
              [--vendor] [--whitelabeled] [--role admin|operator|reader]
  user update USERNAME [--password-stdin] [--email E] [--display-name N] [--vendor=BOOL]
              [--whitelabeled=BOOL] [--disabled=BOOL] [--role ROLE|none] [--if-version V]
  user list [--limit N] [--after CURSOR]
  user show USERNAME
  license create [--seats N] [--owner USERNAME] [--expires TIME [--allow-past]] [--key KEY]
                 [--note TEXT] [--metadata JSON] [--idempotency-key K]
  license list [--status S] [--owner U] [--search Q] [--limit N] [--after CURSOR]
  license show KEY
  license update KEY [--seats N] [--expires TIME|never [--allow-past]] [--owner U|none]
                 [--note TEXT] [--metadata JSON] [--if-version V]
  license suspend|resume|revoke KEY [--if-version V]
  serial register --serial SN --model M --manufacturer NAME --manufacturer-id N --date YYYY-MM-DD
  serial list [--limit N] [--after CURSOR]
  session list [--license KEY] [--live true|false] [--session-ttl D] [--limit N] [--after CURSOR]
  session show ID [--session-ttl D]
  session revoke ID
  token create --name NAME --role admin|operator|reader [--expires TIME]
  token list
  token revoke ID
  stats
  check [--repair]                    (verify every license's seat bookkeeping against its sessions)
  jwt rotate [--drop-old]
  backup --out FILE
  audit list [--after SEQ] [--action A] [--target T] [--actor NAME] [--limit N]
  audit export [--after SEQ]          (every entry as a JSON line)
  audit checkpoint [--out FILE]       (the latest signed checkpoint; --out saves it for audit verify)
  audit verify [--checkpoint FILE]... [--key VERIFIER]...
  audit key [--key-file FILE]         (the verifier key that checks checkpoints)
  audit keygen --out FILE [--name NAME]   (a signing key for serve --audit-key-file)
  offline issue --request REQ.note [--ttl 90d] [--out CERT.note] [--key-file FILE]
                                      (a certificate for an air-gapped device's request; it holds a seat)
  offline deactivate --proof D.note   (free the seat of a device's certificate, once)
  offline list [--license KEY] [--limit N] [--after CURSOR]
  offline key [--key-file FILE]       (the verifier key devices pin)
  offline keygen --out FILE [--name NAME]   (a signing key for serve --offline-key-file)
  app manifest add FILE [--official[=false]]
  app manifest list [--app APP]
  app manifest remove APP VERSION [--schema-version V]
  app credentials set APP --username U [--password-file F]   (default: the password on stdin)
  app tokens list [--session ID]
  product import FILE                 (a JSON array of products as the API returns them; - is stdin)
  product list [--store ID]
  subscription add --user U --product ID [--status active]
  subscription list [--user U]

Every command prints JSON on stdout; on error it prints a message on stderr and exits 1 (2 for a
usage error). --help after any command prints its flags.
`

// Run runs the command line args (without the program name) and returns the exit code: 0 on
// success, 1 on failure, 2 on a usage error.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cliEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, db: os.Getenv("OPENCONSOLE_DB"),
		server: os.Getenv("OPENCONSOLE_SERVER")}
	// A global flag before the command applies to it; one after it is parsed with the command's flags.
	globals := map[string]*string{"db": &env.db, "server": &env.server, "token-file": &env.tokenFile}
next:
	for len(args) > 0 {
		for name, dst := range globals {
			v, inline, ok := cutFlag(args[0], name)
			if !ok {
				continue
			}
			if !inline {
				if len(args) < 2 {
					return env.usageErr("flag needs an argument: --%s", name)
				}
				// Take the value from the next argument; the flag itself is dropped below.
				v, args = args[1], args[1:]
			}
			*dst, args = v, args[1:]
			continue next
		}
		break
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if args[0] == "help" {
		// help, help license, help app manifest: the usage of the commands named so.
		if len(args) == 1 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		group := strings.Join(args[1:], " ")
		if _, ok := commands[group]; ok {
			return commands[group](env, []string{"--help"})
		}
		if !hasSubcommands(group) {
			return env.usageErr("unknown command %q", group)
		}
		fmt.Fprint(stdout, groupUsage(group))
		return 0
	}
	cmd, rest := args[0], args[1:]
	if _, single := commands[cmd]; !single {
		if !hasSubcommands(cmd) {
			return env.usageErr("unknown command %q", cmd)
		}
		// Some groups nest one level deeper: app manifest add.
		for {
			if len(rest) > 0 && isHelp(rest[0]) {
				fmt.Fprint(stdout, groupUsage(cmd))
				return 0
			}
			if len(rest) == 0 {
				return env.usageErr("%s needs a subcommand", cmd)
			}
			cmd, rest = cmd+" "+rest[0], rest[1:]
			if _, ok := commands[cmd]; ok || !hasSubcommands(cmd) {
				break
			}
		}
	}
	run, ok := commands[cmd]
	if !ok {
		return env.usageErr("unknown command %q", cmd)
	}
	env.readOnly = readOnlyCommands[cmd]
	return run(env, rest)
}

// cutFlag reports whether arg is the flag name, as --name or -name (the value is the next
// argument) or as --name=value or -name=value (inline: the value may be empty).
func cutFlag(arg, name string) (value string, inline, ok bool) {
	for _, p := range []string{"--" + name, "-" + name} {
		if arg == p {
			return "", false, true
		}
		if v, found := strings.CutPrefix(arg, p+"="); found {
			return v, true, true
		}
	}
	return "", false, false
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "--h"
}

// groupUsage is the usage of the commands of a group (license, app manifest): their lines of the
// command list.
func groupUsage(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: openconsole [--db DSN] [--server URL [--token-file FILE]] %s SUBCOMMAND [FLAGS]\n\n", group)
	_, list, _ := strings.Cut(usage, "\nCommands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	in := false
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "    ") { // an entry, not a continuation line
			in = strings.HasPrefix(strings.TrimSpace(line), group+" ")
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	fmt.Fprintf(&b, "\nopenconsole %s SUBCOMMAND --help prints a command's flags.\n", group)
	return b.String()
}

// hasSubcommands reports whether group is the first word of some command.
func hasSubcommands(group string) bool {
	for name := range commands {
		if strings.HasPrefix(name, group+" ") {
			return true
		}
	}
	return false
}

var commands = map[string]func(*cliEnv, []string) int{
	"serve":              cmdServe,
	"init":               cmdInit,
	"version":            cmdVersion,
	"user create":        cmdUserCreate,
	"user update":        cmdUserUpdate,
	"user list":          cmdUserList,
	"user show":          cmdUserShow,
	"license create":     cmdLicenseCreate,
	"license list":       cmdLicenseList,
	"license show":       cmdLicenseShow,
	"license update":     cmdLicenseUpdate,
	"license suspend":    cmdLicenseAction("suspend"),
	"license resume":     cmdLicenseAction("resume"),
	"license revoke":     cmdLicenseAction("revoke"),
	"serial register":    cmdSerialRegister,
	"serial list":        cmdSerialList,
	"session list":       cmdSessionList,
	"session show":       cmdSessionShow,
	"session revoke":     cmdSessionRevoke,
	"token create":       cmdTokenCreate,
	"token list":         cmdTokenList,
	"token revoke":       cmdTokenRevoke,
	"stats":              cmdStats,
	"check":              cmdCheck,
	"jwt rotate":         cmdJWTRotate,
	"backup":             cmdBackup,
	"audit list":         cmdAuditList,
	"audit export":       cmdAuditExport,
	"audit checkpoint":   cmdAuditCheckpoint,
	"audit verify":       cmdAuditVerify,
	"audit key":          cmdAuditKey,
	"audit keygen":       cmdAuditKeygen,
	"offline issue":      cmdOfflineIssue,
	"offline deactivate": cmdOfflineDeactivate,
	"offline list":       cmdOfflineList,
	"offline key":        cmdOfflineKey,
	"offline keygen":     cmdOfflineKeygen,

	"app manifest add":    cmdAppManifestAdd,
	"app manifest list":   cmdAppManifestList,
	"app manifest remove": cmdAppManifestRemove,
	"app credentials set": cmdAppCredentialsSet,
	"app tokens list":     cmdAppTokensList,
	"product import":      cmdProductImport,
	"product list":        cmdProductList,
	"subscription add":    cmdSubscriptionAdd,
	"subscription list":   cmdSubscriptionList,
}

// readOnlyCommands only read: on the database itself (no server to ask), they open it read-only
// (check does too without --repair). They work on a file or directory they may not write, and they
// never change the database, not even by a migration or a key created on first use.
var readOnlyCommands = map[string]bool{
	"user list": true, "user show": true, "license list": true, "license show": true, "serial list": true,
	"session list": true, "session show": true, "token list": true, "stats": true, "backup": true,
	"audit list": true, "audit export": true, "audit verify": true, "audit key": true,
	"app manifest list": true, "app tokens list": true, "product list": true, "subscription list": true,
}

// cmdInit creates the database and its schema (and the first JWT signing key, audit key and
// certificate signing key), or
// brings an existing one up to date.
func cmdInit(e *cliEnv, args []string) int {
	fs := e.flags("init")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	e.create = true
	svc, st, done, err := e.open(sqlstore.Options{}, openconsole.Options{OneShot: true})
	if err != nil {
		return e.fail(err)
	}
	defer done()
	if err := svc.CreateAuditKey(e.ctx); err != nil {
		return e.fail(err)
	}
	if err := svc.CreateOfflineKey(e.ctx); err != nil {
		return e.fail(err)
	}
	return e.print(struct {
		Database string `json:"database"`
		Engine   string `json:"engine"`
	}{redactDSN(e.dsn()), st.Engine()})
}

// cmdVersion prints the build's version, from the build information Go embeds in the binary.
func cmdVersion(e *cliEnv, args []string) int {
	fs := e.flags("version")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.print(metrics.ReadBuild())
}
