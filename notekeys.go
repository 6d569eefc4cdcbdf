package openconsole

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// NoteKey is a key that signs notes, as the database keeps it: the audit log's checkpoint keys
// (AuditKey) and the offline certificate signing keys (OfflineKey).
type NoteKey struct {
	// Verifier is the public key in note's encoding, "name+hash+key": for the audit log its name
	// is the log's origin, for certificates it is what devices pin.
	Verifier string
	// Signer is the private key in note's encoding, when the database holds it; empty when it is
	// held in a file outside the database (serve --audit-key-file, --offline-key-file).
	Signer    string
	CreatedAt time.Time
}

// Where a signing key is held.
const (
	AuditKeyInDatabase = "database"
	AuditKeyInFile     = "file"
)

// noteKeyKind is one use of note signing keys. Every kind is kept the same way: the newest key in
// the database signs, and a server creates one on first start; or a key file given at start takes
// over, and the private keys the database held are erased, so that whoever reads the database
// cannot sign.
type noteKeyKind struct {
	what     string // "audit" or "certificate", in errors
	flag     string // serve's flag that names the key file
	signs    string // what the key signs, for the refusal to start without its file
	generate func() (skey, vkey string, err error)
	list     func(context.Context) ([]NoteKey, error)
	listTx   func(Tx) ([]NoteKey, error)
	add      func(Tx, NoteKey) error
	forget   func(Tx) error
}

// heldKey is the key of one kind this process signs with.
type heldKey struct {
	signer   note.Signer // nil: this process signs nothing (a CLI process when the key is in a file, or read-only)
	verifier string      // the newest key's verifier key (empty before a server's first start)
	held     string      // AuditKeyInDatabase or AuditKeyInFile
}

// loadNoteKey loads the key of kind k: the one given (a key file's content), else the newest held
// in the database, which a server generates on first start. A server refuses to start when the
// newest key is held outside the database and none was given; a one-shot process then signs
// nothing, and generates no key.
func (s *Service) loadNoteKey(ctx context.Context, k noteKeyKind, given string) (heldKey, error) {
	if given != "" {
		signer, vkey, err := parseNoteSigner(given, k.what)
		if err != nil {
			return heldKey{}, fmt.Errorf("%s key file: %w", k.what, err)
		}
		err = s.store.Update(ctx, func(tx Tx) error {
			if err := k.add(tx, NoteKey{Verifier: vkey, CreatedAt: s.clock.Now()}); err != nil {
				return err
			}
			return k.forget(tx)
		})
		if err != nil {
			return heldKey{}, fmt.Errorf("%s key: %w", k.what, err)
		}
		return heldKey{signer: signer, verifier: vkey, held: AuditKeyInFile}, nil
	}
	keys, err := k.list(ctx)
	if err != nil {
		return heldKey{}, fmt.Errorf("%s keys: %w", k.what, err)
	}
	if len(keys) == 0 {
		if s.opts.OneShot {
			return heldKey{}, nil
		}
		return s.createNoteKey(ctx, k)
	}
	return s.useNoteKey(k, keys[len(keys)-1])
}

// createNoteKey generates a key of kind k in the database unless one exists (a server does on
// first start, openconsole init too), and returns the newest key.
func (s *Service) createNoteKey(ctx context.Context, k noteKeyKind) (heldKey, error) {
	skey, vkey, err := k.generate()
	if err != nil {
		return heldKey{}, err
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		if have, err := k.listTx(tx); err != nil || len(have) > 0 {
			return err // one exists (another server created it first)
		}
		return k.add(tx, NoteKey{Verifier: vkey, Signer: skey, CreatedAt: s.clock.Now()})
	})
	if err != nil {
		return heldKey{}, fmt.Errorf("create %s key: %w", k.what, err)
	}
	keys, err := k.list(ctx)
	if err != nil {
		return heldKey{}, fmt.Errorf("%s keys: %w", k.what, err)
	}
	if len(keys) == 0 {
		return heldKey{}, fmt.Errorf("%s keys: none stored", k.what)
	}
	return s.useNoteKey(k, keys[len(keys)-1])
}

func (s *Service) useNoteKey(k noteKeyKind, newest NoteKey) (heldKey, error) {
	if newest.Signer == "" {
		if s.opts.OneShot {
			return heldKey{verifier: newest.Verifier, held: AuditKeyInFile}, nil
		}
		return heldKey{}, fmt.Errorf("%s with a key held outside the database (%s): start with %s", k.signs, newest.Verifier, k.flag)
	}
	signer, vkey, err := parseNoteSigner(newest.Signer, k.what)
	if err != nil {
		return heldKey{}, fmt.Errorf("%s key in the database: %w", k.what, err)
	}
	if s.opts.ReadOnly {
		// Without a signer it signs nothing: a read-only process only reads what was signed.
		return heldKey{verifier: vkey, held: AuditKeyInDatabase}, nil
	}
	return heldKey{signer: signer, verifier: vkey, held: AuditKeyInDatabase}, nil
}

// parseNoteSigner parses a signer key of kind what ("audit", "certificate") in note's encoding
// and returns it with its verifier key. Only Ed25519 keys are accepted.
func parseNoteSigner(skey, what string) (note.Signer, string, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("not an %s signing key (PRIVATE+KEY+name+hash+key): %w", what, err)
	}
	// The key's last field is the algorithm byte (1: Ed25519) and the 32-byte seed.
	// (Names hold no '+', the base64 of the key may.)
	fields := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(fields[len(fields)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, "", fmt.Errorf("not an Ed25519 %s signing key", what)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, "", err
	}
	return s, vkey, nil
}

// noteKeyName is name, or when empty prefix and eight random hex digits; it refuses a name a note
// key cannot have (spaces, '+', control characters) or one longer than 64 bytes.
func noteKeyName(name, prefix, what string) (string, error) {
	if name == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		return prefix + hex.EncodeToString(b[:]), nil
	}
	if strings.ContainsAny(name, "+ \t\n\r") || !utf8Printable(name) || len(name) > 64 {
		return "", Errorf(EINVALID, "%s key names are 1 to 64 printable characters without spaces or '+'", what)
	}
	return name, nil
}

func utf8Printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return false
		}
	}
	return s != ""
}
