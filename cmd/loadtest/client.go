package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is a minimal HTTP/1.1 keep-alive client on one TCP connection. The load generator shares two
// cores with the server it measures, so it must cost as little as possible per request: no
// per-request goroutines, no header maps, one buffer reused for every request.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
}

// response is what the harness needs of an answer. body and session alias the conn's buffers and
// are valid until the next request.
type response struct {
	status  int
	session []byte // the X-Session-Id header
	body    []byte
}

func dial(addr string) (*conn, error) {
	c := &conn{addr: addr}
	return c, c.connect()
}

func (c *conn) connect() error {
	if c.c != nil {
		c.c.Close()
	}
	nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	c.c, c.r = nc, bufio.NewReaderSize(nc, 16<<10)
	return nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
	}
}

// post sends one POST with the given extra header lines ("Name: value", without CRLF) and reads
// the answer. On a broken connection it reconnects once.
func (c *conn) post(path string, headers []string, body []byte) (response, error) {
	resp, err := c.roundTrip(path, headers, body)
	if err != nil && !errors.Is(err, errStatus) {
		if cerr := c.connect(); cerr != nil {
			return resp, cerr
		}
		resp, err = c.roundTrip(path, headers, body)
	}
	return resp, err
}

// postOnce is post without the resend, for requests that must not run twice: an activation of a
// new device takes a seat each time it runs. After a transport error it reconnects for the next
// request and returns the error.
func (c *conn) postOnce(path string, headers []string, body []byte) (response, error) {
	resp, err := c.roundTrip(path, headers, body)
	if err != nil && !errors.Is(err, errStatus) {
		c.connect() // on failure the next request fails on the closed connection, and is counted
	}
	return resp, err
}

var errStatus = errors.New("malformed status line")

func (c *conn) roundTrip(path string, headers []string, body []byte) (response, error) {
	b := c.buf[:0]
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.addr...)
	b = append(b, "\r\nUser-Agent: openconsole-loadtest\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n"...)
	for _, h := range headers {
		b = append(b, h...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	c.buf = b
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		return response{}, err
	}
	var resp response
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return resp, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return resp, fmt.Errorf("%w: %q", errStatus, line)
	}
	resp.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return resp, fmt.Errorf("%w: %q", errStatus, line)
	}
	length, closeAfter := 0, false
	// Header values are copied into c.buf after the request bytes, which are no longer needed.
	c.buf = c.buf[:0]
	sessStart, sessEnd := -1, -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return resp, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			length, _ = strconv.Atoi(string(value))
		case asciiEqualFold(name, "X-Session-Id"):
			sessStart = len(c.buf)
			c.buf = append(c.buf, value...)
			sessEnd = len(c.buf)
		case asciiEqualFold(name, "Connection"):
			closeAfter = asciiEqualFold(value, "close")
		}
	}
	bodyStart := len(c.buf)
	if cap(c.buf)-len(c.buf) < length {
		nb := make([]byte, len(c.buf), len(c.buf)+length)
		copy(nb, c.buf)
		c.buf = nb
	}
	c.buf = c.buf[:bodyStart+length]
	if _, err := io.ReadFull(c.r, c.buf[bodyStart:]); err != nil {
		return resp, err
	}
	resp.body = c.buf[bodyStart:]
	if sessStart >= 0 {
		resp.session = c.buf[sessStart:sessEnd]
	}
	if closeAfter {
		err = c.connect()
	}
	return resp, err
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x|0x20 != y|0x20 {
			return false
		}
	}
	return true
}
