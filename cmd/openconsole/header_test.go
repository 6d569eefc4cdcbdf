package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestHeaderLimitIsTheDocumented16KiB (issue 10): a request whose line and headers take 16 KiB is
// served, one byte more is refused 431 before any handler runs. (net/http adds 4 KiB of slack to
// MaxHeaderBytes; a server that set it to 16 KiB let 20 KiB through.)
func TestHeaderLimitIsTheDocumented16KiB(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	defer srv.Close()
	send := func(total int) int {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		head := "GET /api/v2/products HTTP/1.1\r\nHost: console\r\nX-Pad: "
		fmt.Fprintf(c, "%s%s\r\n\r\n", head, strings.Repeat("a", total-len(head)-4))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct{ total, want int }{
		{4 << 10, 200}, {16 << 10, 200}, {16<<10 + 1, 431}, {20 << 10, 431}, {64 << 10, 431},
	} {
		if got := send(tc.total); got != tc.want {
			t.Errorf("request line and headers of %d bytes: status %d, want %d", tc.total, got, tc.want)
		}
	}
	if served != 2 {
		t.Errorf("handler ran %d times, want 2 (the refused requests never reach it)", served)
	}
}
