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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `Usage: openconsole [--db DSN] COMMAND [FLAGS]

The database is chosen by --db or OPENCONSOLE_DB: sqlite:PATH (or a plain path) or
postgres://USER:PASS@HOST:PORT/DB; the default is ./openconsole.db.

Commands:
  serve [--addr HOST:PORT] [--session-ttl DURATION] [--token-ttl DURATION] [--default-store ID]
  user create --username U (--password P | --password-stdin) [--email E] [--display-name N] [--vendor] [--whitelabeled]
  license create [--owner USERNAME] [--activations N] [--expires RFC3339] [--key KEY]
  license list [--limit N] [--after CURSOR]
  license revoke KEY
  serial register --serial SN --model M --manufacturer NAME --manufacturer-id N --date YYYY-MM-DD
  session list [--license KEY] [--limit N] [--after CURSOR]
  session revoke ID
  jwt rotate [--drop-old]
  check [--repair]                    (verify every license's seat bookkeeping against its sessions)
  backup --out FILE
  app manifest add FILE [--official[=false]]
  app manifest list [--app APP]
  app manifest remove APP VERSION [--schema-version V]
  app credentials set APP --username U [--password-file F]   (default: the password on stdin)
  app tokens list [--session ID]
  product import FILE                 (a JSON array of products as the API returns them; - is stdin)
  product list [--store ID]
  subscription add --user U --product ID [--status active]
  subscription list [--user U]

Every admin command prints JSON on stdout and exits non-zero with a message on stderr on error.
`

// Run runs the command line args (without the program name) and returns the exit code: 0 on
// success, 1 on failure, 2 on a usage error.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cliEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, db: os.Getenv("OPENCONSOLE_DB")}
	// A --db before the command applies to it; one after it is parsed with the command's flags.
	for len(args) > 0 {
		v, inline, ok := cutFlag(args[0], "db")
		if !ok {
			break
		}
		if !inline {
			if len(args) < 2 {
				return env.usageErr("flag needs an argument: --db")
			}
			// Take the value from the next argument; the flag itself is dropped below.
			v, args = args[1], args[1:]
		}
		env.db, args = v, args[1:]
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	if _, single := commands[cmd]; !single {
		if !hasSubcommands(cmd) {
			return env.usageErr("unknown command %q", cmd)
		}
		if len(rest) == 0 {
			return env.usageErr("%s needs a subcommand", cmd)
		}
		cmd, rest = cmd+" "+rest[0], rest[1:]
		// Some groups nest one level deeper: app manifest add.
		if _, ok := commands[cmd]; !ok && hasSubcommands(cmd) {
			if len(rest) == 0 {
				return env.usageErr("%s needs a subcommand", cmd)
			}
			cmd, rest = cmd+" "+rest[0], rest[1:]
		}
	}
	run, ok := commands[cmd]
	if !ok {
		return env.usageErr("unknown command %q", cmd)
	}
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
	"serve":           cmdServe,
	"user create":     cmdUserCreate,
	"license create":  cmdLicenseCreate,
	"license list":    cmdLicenseList,
	"license revoke":  cmdLicenseRevoke,
	"serial register": cmdSerialRegister,
	"session list":    cmdSessionList,
	"session revoke":  cmdSessionRevoke,
	"jwt rotate":      cmdJWTRotate,
	"check":           cmdCheck,
	"backup":          cmdBackup,

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
