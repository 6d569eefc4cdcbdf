package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"

	"openconsole"
	"openconsole/admin"
)

// The offline commands: certificates for air-gapped devices. Each is a request to the operator API
// (client.go), so they work against a running server and on the database alike.

// maxNoteFile bounds the note files the commands read.
const maxNoteFile = 64 << 10

func readNoteFile(flag, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	if fi.Size() > maxNoteFile {
		return "", fmt.Errorf("--%s: %s is not a note (%d bytes)", flag, path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return string(b), nil
}

// cmdOfflineIssue turns a device's request into a certificate:
// offline issue --request req.note [--ttl 90d] --out cert.note.
func cmdOfflineIssue(e *cliEnv, args []string) int {
	fs := e.flags("offline issue")
	reqFile := fs.String("request", "", "the device's request note (ocdev offline request writes it; required)")
	ttl := fs.String("ttl", "", "the certificate's lifetime, such as 90d (the default) or 36h; never past the license's expiry")
	out := fs.String("out", "", "write the certificate note to this new file (default: print it in the JSON answer)")
	keyFile := fs.String("key-file", "", "without a server: the certificate signing key file the servers use (serve --offline-key-file)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *reqFile == "" {
		return e.usageErr("offline issue needs --request FILE")
	}
	req, err := readNoteFile("request", *reqFile)
	if err != nil {
		return e.fail(err)
	}
	if *keyFile != "" {
		k, err := readKeyFile("key-file", *keyFile)
		if err != nil {
			return e.fail(err)
		}
		e.offlineKey = k
	}
	body := map[string]any{"request": req}
	if *ttl != "" {
		body["ttl"] = *ttl
	}
	// The file is created before the certificate is: a certificate is issued (and takes a seat)
	// only when it can be written.
	var f *os.File
	if *out != "" {
		if f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
			return e.fail(fmt.Errorf("--out: %w", err))
		}
		defer func() {
			if f != nil {
				f.Close()
				os.Remove(*out)
			}
		}()
	}
	c, err := e.client(0)
	if err != nil {
		return e.fail(err)
	}
	defer c.close()
	b, _, err := c.do(e.ctx, request{method: "POST", path: "/offline/certificates", body: bodyOf(body)})
	if err != nil {
		return e.fail(err)
	}
	if *out == "" {
		return e.printRaw(b)
	}
	var issued admin.IssuedJSON
	if err := json.Unmarshal(b, &issued); err != nil {
		return e.fail(fmt.Errorf("unexpected answer: %w", err))
	}
	_, err = f.WriteString(issued.Certificate)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return e.fail(fmt.Errorf("--out: %w", err))
	}
	f = nil // kept
	return e.print(struct {
		File     string                       `json:"file"`
		Replaced bool                         `json:"replaced"`
		Record   admin.OfflineCertificateJSON `json:"record"`
	}{*out, issued.Replaced, issued.Record})
}

// writeNewFile writes content to a file that must not exist yet, durably.
func writeNewFile(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cmdOfflineDeactivate frees the seat of a device's certificate: offline deactivate --proof d.note.
func cmdOfflineDeactivate(e *cliEnv, args []string) int {
	fs := e.flags("offline deactivate")
	proofFile := fs.String("proof", "", "the device's deactivation note (ocdev offline deactivate writes it; required)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *proofFile == "" {
		return e.usageErr("offline deactivate needs --proof FILE")
	}
	proof, err := readNoteFile("proof", *proofFile)
	if err != nil {
		return e.fail(err)
	}
	return e.call(0, request{method: "POST", path: "/offline/deactivations", body: bodyOf(map[string]any{"proof": proof})})
}

// cmdOfflineList lists the certificate records: offline list [--license KEY].
func cmdOfflineList(e *cliEnv, args []string) int {
	fs := e.flags("offline list")
	key := fs.String("license", "", "only the certificates of this license key or serial")
	limit, after := listFlags(fs)
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	if *key != "" {
		q.Set("license", *key)
	}
	return e.list(0, "/offline/certificates", q, *limit, *after)
}

// cmdOfflineKey prints the verifier key devices pin (or, with --key-file, that of a key file).
func cmdOfflineKey(e *cliEnv, args []string) int {
	fs := e.flags("offline key")
	file := fs.String("key-file", "", "print the verifier key of this signing key file instead")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *file != "" {
		k, err := readKeyFile("key-file", *file)
		if err != nil {
			return e.fail(err)
		}
		s, vkey, err := openconsole.ParseOfflineSigner(k)
		if err != nil {
			return e.fail(fmt.Errorf("--key-file: %w", err))
		}
		return e.print(map[string]any{"name": s.Name(), "verifier": vkey, "file": *file})
	}
	return e.call(0, request{method: "GET", path: "/offline/key"})
}

// cmdOfflineKeygen writes a new certificate signing key to a new file (mode 0600), for serve
// --offline-key-file, and prints its verifier key.
func cmdOfflineKeygen(e *cliEnv, args []string) int {
	fs := e.flags("offline keygen")
	out := fs.String("out", "", "the new key file (required)")
	name := fs.String("name", "", "the key's name, the certificates' issuer (default: openconsole-offline- and 8 random hex digits)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *out == "" {
		return e.usageErr("offline keygen needs --out FILE")
	}
	skey, vkey, err := openconsole.NewOfflineKey(*name)
	if err != nil {
		return e.fail(err)
	}
	if err := writeNewFile(*out, skey+"\n", 0o600); err != nil {
		return e.fail(fmt.Errorf("--out: %w", err))
	}
	n, _, _ := strings.Cut(vkey, "+")
	return e.print(map[string]any{"file": *out, "name": n, "verifier": vkey})
}

// readKeyFile reads a signing key file that only its owner may read.
func readKeyFile(flag, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("--%s: %s may be read by others (mode %04o): chmod 600 it", flag, path, fi.Mode().Perm())
	}
	if fi.Size() > maxNoteFile {
		return "", fmt.Errorf("--%s: %s is not a key file", flag, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return string(b), nil
}
