// Command loadtest simulates a fleet of FLECS devices against a running OpenConsole and measures
// it, side by side with a baseline: a bare net/http handler in this same binary that answers
// validate with the same bytes and does nothing else.
//
//	loadtest populate --db DSN --devices N [--stored M [--stored-seen-ago D]] [--big-seats S --big-live L] [--many K] --fleet fleet.json
//	loadtest run --url http://127.0.0.1:8080 --fleet fleet.json [--baseline] [--conns C] [--duration D]
//	loadtest run --seats-rounds R --db DSN ...   one big license against many small ones (activations/s)
//	loadtest run --writeback --db DSN ...        validate while a wave of last-seen write-backs drains
//	loadtest baseline --addr 127.0.0.1:0
//	loadtest pgdb create|drop DSN NAME           a fresh PostgreSQL database on DSN's server
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtest populate|run|baseline|pgdb [flags] (-h for each)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "populate":
		err = cmdPopulate(os.Args[2:])
	case "run":
		err = cmdRun(os.Args[2:])
	case "baseline":
		err = cmdBaseline(os.Args[2:])
	case "pgdb":
		err = cmdPGDB(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// baselineBody is the body OpenConsole answers for a valid session.
var baselineBody = []byte(`{"statusCode":200,"statusText":"OK","data":{"isValid":true}}`)

// baselineHandler answers every request like OpenConsole's validate of a live session: the same
// status, headers and body, with the request's session id echoed in X-Session-Id. It looks nothing
// up.
func baselineHandler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(baselineBody))}
	h["X-Session-Id"] = []string{`{"id":"` + r.Header.Get("X-Session-Id") + `","timestamp":1795640309692}`}
	w.WriteHeader(http.StatusOK)
	w.Write(baselineBody)
}

// cmdBaseline serves the baseline handler and prints its address on stdout.
func cmdBaseline(args []string) error {
	addr := "127.0.0.1:0"
	if len(args) == 2 && args[0] == "--addr" {
		addr = args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: http.HandlerFunc(baselineHandler), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	return srv.Serve(ln)
}
