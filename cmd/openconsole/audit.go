package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"openconsole"
	"openconsole/admin"
)

// The audit commands: reading the log, saving checkpoints, and verifying the log against them.

// cmdAuditList lists entries: audit list [--after SEQ|CURSOR] [--action A] [--target T] [--actor NAME] [--limit N].
func cmdAuditList(e *cliEnv, args []string) int {
	fs := e.flags("audit list")
	after := fs.String("after", "", "only entries after this sequence number (or the nextCursor of an earlier listing)")
	action := fs.String("action", "", "only entries of this action, such as license.suspend")
	target := fs.String("target", "", "only entries of this target, such as user:alice or license:KEY")
	actor := fs.String("actor", "", "only entries made by this actor name (a token's name, an OS user, a web user)")
	limit := fs.Int("limit", 0, "at most this many entries (default: all)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	for k, v := range map[string]string{"action": *action, "target": *target, "actor": *actor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	cursor := *after
	if n, err := strconv.ParseInt(*after, 10, 64); err == nil {
		q.Set("after", strconv.FormatInt(n, 10))
		cursor = ""
	}
	return e.list(0, "/audit", q, *limit, cursor)
}

// cmdAuditExport writes every entry (after --after SEQ) as JSON lines, streaming.
func cmdAuditExport(e *cliEnv, args []string) int {
	fs := e.flags("audit export")
	after := fs.Int64("after", -1, "only entries after this sequence number (default: all)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	c, err := e.client(0)
	if err != nil {
		return e.fail(err)
	}
	defer c.close()
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	err = auditEntries(e, c, *after, func(raw json.RawMessage, _ admin.AuditJSON) error {
		w.Write(raw)
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return e.fail(err)
	}
	return 0
}

// auditEntries pages through the log after seq after, in order.
func auditEntries(e *cliEnv, c *opClient, after int64, fn func(json.RawMessage, admin.AuditJSON) error) error {
	q := url.Values{"limit": {"1000"}}
	if after >= 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	for {
		b, _, err := c.do(e.ctx, request{method: "GET", path: "/audit", query: q})
		if err != nil {
			return err
		}
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor *string           `json:"nextCursor"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return fmt.Errorf("unexpected answer: %w", err)
		}
		for _, raw := range page.Items {
			var j admin.AuditJSON
			if err := json.Unmarshal(raw, &j); err != nil {
				return fmt.Errorf("unexpected audit entry: %w", err)
			}
			if err := fn(raw, j); err != nil {
				return err
			}
		}
		if page.NextCursor == nil {
			return nil
		}
		q.Del("after")
		q.Set("cursor", *page.NextCursor)
	}
}

// cmdAuditCheckpoint prints the latest signed checkpoint; --out saves its signed note to a new file
// (what an auditor keeps, to check later that the log still extends it).
func cmdAuditCheckpoint(e *cliEnv, args []string) int {
	fs := e.flags("audit checkpoint")
	out := fs.String("out", "", "write the signed checkpoint to this new file")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	c, err := e.client(0)
	if err != nil {
		return e.fail(err)
	}
	defer c.close()
	b, _, err := c.do(e.ctx, request{method: "GET", path: "/audit/checkpoint"})
	if err != nil {
		return e.fail(err)
	}
	if *out == "" {
		return e.printRaw(b)
	}
	var cp admin.CheckpointJSON
	if err := json.Unmarshal(b, &cp); err != nil {
		return e.fail(fmt.Errorf("unexpected answer: %w", err))
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return e.fail(fmt.Errorf("--out: %w", err))
	}
	if _, err := f.WriteString(cp.Note); err != nil {
		f.Close()
		return e.fail(err)
	}
	if err := f.Close(); err != nil {
		return e.fail(err)
	}
	return e.print(map[string]any{"file": *out, "size": cp.Size, "rootHash": cp.RootHash, "signedAt": cp.SignedAt})
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// cmdAuditVerify checks the whole log: every entry against the hash stored when it was written,
// the tree against the latest signed checkpoint and against each saved one given.
func cmdAuditVerify(e *cliEnv, args []string) int {
	fs := e.flags("audit verify")
	var files, keys repeated
	fs.Var(&files, "checkpoint", "a checkpoint saved earlier (audit checkpoint --out) that the log must still extend; repeatable")
	fs.Var(&keys, "key", "the verifier key to trust (audit key prints it; repeatable; default: the keys the server names)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	c, err := e.client(0)
	if err != nil {
		return e.fail(err)
	}
	defer c.close()
	keyFrom := "flag"
	if len(keys) == 0 {
		b, _, err := c.do(e.ctx, request{method: "GET", path: "/audit/key"})
		if err != nil {
			return e.fail(err)
		}
		var k admin.AuditKeyJSON
		if err := json.Unmarshal(b, &k); err != nil {
			return e.fail(fmt.Errorf("unexpected answer: %w", err))
		}
		keys, keyFrom = k.Verifiers, "server"
	}
	v := openconsole.NewAuditVerifier(keys)
	b, _, err := c.do(e.ctx, request{method: "GET", path: "/audit/checkpoint"})
	var ae *apiError
	switch {
	case err == nil:
		var cp admin.CheckpointJSON
		if err := json.Unmarshal(b, &cp); err != nil {
			return e.fail(fmt.Errorf("unexpected answer: %w", err))
		}
		v.AddCheckpoint("latest", []byte(cp.Note))
	case errors.As(err, &ae) && ae.Code == openconsole.ENOTFOUND:
		// Nothing signed yet: the log is empty (or no server has run since the first change).
	default:
		return e.fail(err)
	}
	for _, f := range files {
		note, err := os.ReadFile(f)
		if err != nil {
			return e.fail(fmt.Errorf("--checkpoint: %w", err))
		}
		v.AddCheckpoint(f, note)
	}
	err = auditEntries(e, c, -1, func(_ json.RawMessage, j admin.AuditJSON) error {
		en := admin.AuditEntryFrom(j)
		if j.LeafHash != nil {
			h, err := openconsole.ParseHash(*j.LeafHash)
			if err != nil {
				return fmt.Errorf("entry %d: leafHash: %w", j.Seq, err)
			}
			en.LeafHash = h
		}
		v.Add(en)
		return nil
	})
	if err != nil {
		return e.fail(err)
	}
	res := v.Finish()
	out := struct {
		openconsole.AuditVerification
		Keys    []string `json:"keys"`
		KeyFrom string   `json:"keyFrom"`
	}{res, keys, keyFrom}
	if out.Keys == nil {
		out.Keys = []string{}
	}
	if code := e.print(out); code != 0 {
		return code
	}
	if !res.OK {
		fmt.Fprintf(e.stderr, "openconsole: audit verify: %s\n", res.Problems[0].Message)
		return 1
	}
	return 0
}

// cmdAuditKey prints the verifier key of the audit log (or, with --key-file, of a key file).
func cmdAuditKey(e *cliEnv, args []string) int {
	fs := e.flags("audit key")
	file := fs.String("key-file", "", "print the verifier key of this signing key file instead")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return e.fail(fmt.Errorf("--key-file: %w", err))
		}
		s, vkey, err := openconsole.ParseAuditSigner(string(b))
		if err != nil {
			return e.fail(fmt.Errorf("--key-file: %w", err))
		}
		return e.print(map[string]any{"origin": s.Name(), "verifier": vkey, "file": *file})
	}
	return e.call(0, request{method: "GET", path: "/audit/key"})
}

// cmdAuditKeygen writes a new audit signing key to a new file (mode 0600), for serve
// --audit-key-file, and prints its verifier key.
func cmdAuditKeygen(e *cliEnv, args []string) int {
	fs := e.flags("audit keygen")
	out := fs.String("out", "", "the new key file (required)")
	name := fs.String("name", "", "the key's name, the log's origin (default: openconsole-audit- and 8 random hex digits)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *out == "" {
		return e.usageErr("audit keygen needs --out FILE")
	}
	skey, vkey, err := openconsole.NewAuditKey(*name)
	if err != nil {
		return e.fail(err)
	}
	if err := writeNewFile(*out, skey+"\n", 0o600); err != nil {
		return e.fail(fmt.Errorf("--out: %w", err))
	}
	origin, _, _ := strings.Cut(vkey, "+")
	return e.print(map[string]any{"file": *out, "origin": origin, "verifier": vkey})
}
