package openconsole

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The audit log is tamper-evident. Its entries are the leaves of a Merkle tree as RFC 6962 defines
// it (tlog computes the hashes and the proofs); the leaf of entry n is AuditLeaf of it, and the tree
// hashes are stored next to the entries, written in the same transaction as the entry. Servers sign
// a checkpoint of the tree (its origin, size and root hash, as a signed note with an Ed25519 key)
// whenever the log has grown, at most once a second. Whoever keeps a checkpoint can later check
// that the log still extends it: that no entry it covers was changed, removed or reordered.

// AuditKey is a key that signs (or signed) the audit log's checkpoints.
type AuditKey = NoteKey

// AuditCheckpoint is a signed checkpoint of the audit tree.
type AuditCheckpoint struct {
	Size     int64
	Root     tlog.Hash
	Note     []byte // the signed note: origin, size and root hash, then the signature
	SignedAt time.Time
}

// auditLeafJSON is the canonical form of an entry, the bytes its tree leaf hashes.
type auditLeafJSON struct {
	V      int             `json:"v"`
	Seq    int64           `json:"seq"`
	At     int64           `json:"at"` // Unix milliseconds
	Actor  auditLeafActor  `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

type auditLeafActor struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// AuditLeaf returns the bytes entry e contributes to the audit tree: its fields as one JSON object
// in a fixed order, compact, with Before and After as the JSON they hold (a value that is not JSON
// is taken as a string, so that it still changes the leaf).
func AuditLeaf(e AuditEntry) []byte {
	b, err := json.Marshal(auditLeafJSON{V: 1, Seq: e.Seq, At: e.At.UnixMilli(),
		Actor:  auditLeafActor{e.Actor.Kind, e.Actor.Name, e.Actor.Addr},
		Action: e.Action, Target: e.Target, Before: JSONOrString(e.Before), After: JSONOrString(e.After)})
	if err != nil {
		panic("openconsole: audit leaf: " + err.Error()) // cannot happen: every field is valid JSON
	}
	return b
}

// JSONOrString returns b when it is valid JSON, else b as a JSON string.
func JSONOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// appendAudit appends e to the audit log in tx: it takes the next sequence number, and stores the
// entry with the tree hashes its leaf adds.
func appendAudit(tx Tx, e AuditEntry) (AuditEntry, error) {
	n, err := tx.AuditSize()
	if err != nil {
		return e, fmt.Errorf("audit log size: %w", err)
	}
	e.Seq = n
	leaf := AuditLeaf(e)
	hashes, err := tlog.StoredHashes(n, leaf, tlog.HashReaderFunc(tx.AuditHashes))
	if err != nil {
		return e, fmt.Errorf("audit tree: %w", err)
	}
	e.LeafHash = tlog.RecordHash(leaf)
	return e, tx.AppendAudit(e, tlog.StoredHashIndex(0, n), hashes)
}

// auditLog is the server's side of the log: the key it signs checkpoints with.
type auditLog struct {
	mu       sync.Mutex
	watch    auditWatch
	signer   note.Signer // nil: this process cannot sign (a CLI process when the key is in a file)
	verifier string      // the signer's verifier key
	held     string      // "database" or "file"
	lastSign time.Duration
	signed   bool
	size     int64 // the log's size when this process last looked
}

// ParseAuditSigner parses a signer key in note's encoding (what openconsole audit keygen writes) and
// returns it with its verifier key. Only Ed25519 keys are accepted.
func ParseAuditSigner(skey string) (note.Signer, string, error) {
	return parseNoteSigner(skey, "audit")
}

// NewAuditKey generates an audit signing key named name (empty: openconsole-audit- and eight
// random hex digits) and returns its signer and verifier keys.
func NewAuditKey(name string) (skey, vkey string, err error) {
	if name, err = noteKeyName(name, "openconsole-audit-", "audit"); err != nil {
		return "", "", err
	}
	return note.GenerateKey(rand.Reader, name)
}

// auditKeys is how the audit log's keys are kept.
func (s *Service) auditKeys() noteKeyKind {
	return noteKeyKind{what: "audit", flag: "--audit-key-file", signs: "the audit log is signed",
		generate: func() (string, string, error) { return NewAuditKey("") },
		list:     s.store.AuditKeys, listTx: Tx.AuditKeys, add: Tx.AddAuditKey, forget: Tx.ForgetAuditSigners}
}

// initAudit loads the key that signs checkpoints (see loadNoteKey).
func (s *Service) initAudit(ctx context.Context, given string) error {
	k, err := s.loadNoteKey(ctx, s.auditKeys(), given)
	if err != nil {
		return err
	}
	s.audit = &auditLog{signer: k.signer, verifier: k.verifier, held: k.held}
	return nil
}

// CreateAuditKey generates the audit key in the database unless one exists (a server does on first
// start, openconsole init too), and signs with the newest key from then on.
func (s *Service) CreateAuditKey(ctx context.Context) error {
	k, err := s.createNoteKey(ctx, s.auditKeys())
	if err != nil {
		return err
	}
	s.audit = &auditLog{signer: k.signer, verifier: k.verifier, held: k.held}
	return nil
}

// AuditKeyInfo is the audit key in use and every key that signed checkpoints before it.
type AuditKeyInfo struct {
	Verifier  string   // the newest key's verifier key (empty before the first start of a server)
	Origin    string   // the log's origin: the key's name
	Held      string   // AuditKeyInDatabase or AuditKeyInFile
	Verifiers []string // every key's verifier key, oldest first
}

// AuditKeyInfo describes the audit keys.
func (s *Service) AuditKeyInfo(ctx context.Context) (AuditKeyInfo, error) {
	keys, err := s.store.AuditKeys(ctx)
	if err != nil {
		return AuditKeyInfo{}, fmt.Errorf("audit keys: %w", err)
	}
	var info AuditKeyInfo
	for _, k := range keys {
		info.Verifiers = append(info.Verifiers, k.Verifier)
	}
	if len(keys) > 0 {
		newest := keys[len(keys)-1]
		info.Verifier, info.Held = newest.Verifier, AuditKeyInDatabase
		if newest.Signer == "" {
			info.Held = AuditKeyInFile
		}
		info.Origin, _, _ = strings.Cut(newest.Verifier, "+")
	}
	return info, nil
}

// AuditSigningInterval is how often at most a server signs a new checkpoint.
const AuditSigningInterval = time.Second

// FormatAuditCheckpoint is the text of a checkpoint, before its signature: the origin, the tree
// size and the root hash (base64), one per line.
func FormatAuditCheckpoint(origin string, size int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// ParseAuditCheckpoint parses a checkpoint's text (as FormatAuditCheckpoint writes it, possibly
// followed by extension lines).
func ParseAuditCheckpoint(text string) (origin string, size int64, root tlog.Hash, err error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return "", 0, root, errors.New("malformed checkpoint")
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", 0, root, errors.New("malformed checkpoint: bad tree size")
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != len(root) {
		return "", 0, root, errors.New("malformed checkpoint: bad root hash")
	}
	copy(root[:], h)
	return lines[0], size, root, nil
}

// OpenAuditCheckpoint verifies a signed checkpoint with any of the verifier keys and parses it.
func OpenAuditCheckpoint(msg []byte, verifiers []string) (origin string, size int64, root tlog.Hash, err error) {
	var vs []note.Verifier
	for _, k := range verifiers {
		v, err := note.NewVerifier(k)
		if err != nil {
			return "", 0, root, fmt.Errorf("verifier key %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		return "", 0, root, fmt.Errorf("checkpoint signature: %w", err)
	}
	origin, size, root, err = ParseAuditCheckpoint(n.Text)
	if err != nil {
		return "", 0, root, err
	}
	if origin != n.Sigs[0].Name {
		return "", 0, root, fmt.Errorf("checkpoint of %q signed by the key of %q", origin, n.Sigs[0].Name)
	}
	return origin, size, root, nil
}

// signAudit signs a checkpoint of the log when it has grown since the latest one and the last
// signature by this process is at least AuditSigningInterval old. It returns the latest checkpoint
// (ErrNotFound while the log is empty and none was signed).
func (s *Service) signAudit(ctx context.Context) (AuditCheckpoint, error) {
	a := s.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	latest, err := s.store.AuditCheckpoint(ctx, -1)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return latest, fmt.Errorf("audit checkpoint: %w", err)
	}
	if a.signer == nil {
		return latest, err
	}
	n, serr := s.store.AuditSize(ctx)
	if serr != nil {
		return latest, fmt.Errorf("audit log size: %w", serr)
	}
	now := s.clock.elapsed(s.clock.Now())
	if n == 0 || (err == nil && latest.Size >= n) {
		a.size = n
		return latest, err
	}
	if a.signed && now-a.lastSign < AuditSigningInterval {
		return latest, err
	}
	root, terr := tlog.TreeHash(n, s.auditHashes(ctx))
	if terr != nil {
		return latest, fmt.Errorf("audit tree: %w", terr)
	}
	msg, terr := note.Sign(&note.Note{Text: FormatAuditCheckpoint(a.signer.Name(), n, root)}, a.signer)
	if terr != nil {
		return latest, fmt.Errorf("sign audit checkpoint: %w", terr)
	}
	c := AuditCheckpoint{Size: n, Root: root, Note: msg, SignedAt: s.clock.Now().UTC().Truncate(time.Millisecond)}
	if terr := s.store.Update(ctx, func(tx Tx) error { return tx.PutAuditCheckpoint(c) }); terr != nil {
		return latest, fmt.Errorf("store audit checkpoint: %w", terr)
	}
	a.lastSign, a.signed, a.size = now, true, n
	return s.store.AuditCheckpoint(ctx, -1)
}

// maybeSignAudit signs a checkpoint when the log has grown since this process last looked: the
// background work of a server, one cheap read a second while nothing changes.
func (s *Service) maybeSignAudit(ctx context.Context) error {
	n, err := s.store.AuditSize(ctx)
	if err != nil {
		return fmt.Errorf("audit log size: %w", err)
	}
	s.audit.mu.Lock()
	known := s.audit.size
	s.audit.mu.Unlock()
	if n <= known {
		return nil
	}
	if _, err := s.signAudit(ctx); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

func (s *Service) auditHashes(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.store.AuditHashes(ctx, idx) })
}

// AuditCheckpoint returns the latest signed checkpoint, signing one first when the log has grown
// (at most once per AuditSigningInterval). ENOTFOUND while the log is empty.
func (s *Service) AuditCheckpoint(ctx context.Context) (AuditCheckpoint, error) {
	c, err := s.signAudit(ctx)
	if errors.Is(err, ErrNotFound) {
		return c, Errorf(ENOTFOUND, "no checkpoint is signed yet: the audit log is empty")
	}
	return c, err
}

// AuditInclusion proves that an entry is in the tree of a size.
type AuditInclusion struct {
	Entry      AuditEntry
	Leaf       []byte // AuditLeaf(Entry)
	Size       int64
	Root       tlog.Hash
	Proof      tlog.RecordProof
	Checkpoint []byte // the signed checkpoint of Size, when one was signed
}

// auditTreeSize resolves the tree size a request names (0: the latest checkpoint's size) and
// returns it with the signed checkpoint of that size, if there is one.
func (s *Service) auditTreeSize(ctx context.Context, size int64) (int64, []byte, error) {
	if size == 0 {
		c, err := s.AuditCheckpoint(ctx)
		if err != nil {
			return 0, nil, err
		}
		return c.Size, c.Note, nil
	}
	n, err := s.store.AuditSize(ctx)
	if err != nil {
		return 0, nil, err
	}
	if size < 0 || size > n {
		return 0, nil, Errorf(EINVALID, "the audit log has %d entries: no tree of size %d", n, size)
	}
	c, err := s.store.AuditCheckpoint(ctx, size)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, nil, err
	}
	return size, c.Note, nil
}

// ProveAuditEntry returns a proof that entry seq is in the tree of the given size (0: the latest
// checkpoint's).
func (s *Service) ProveAuditEntry(ctx context.Context, seq, size int64) (AuditInclusion, error) {
	size, cp, err := s.auditTreeSize(ctx, size)
	if err != nil {
		return AuditInclusion{}, err
	}
	if seq < 0 || seq >= size {
		return AuditInclusion{}, Errorf(EINVALID, "entry %d is not in a tree of %d entries", seq, size)
	}
	var e AuditEntry
	for got, err := range s.Audit(ctx, AuditQuery{From: seq, Limit: 1}) {
		if err != nil {
			return AuditInclusion{}, err
		}
		e = got
	}
	if e.Seq != seq {
		return AuditInclusion{}, Errorf(ENOTFOUND, "audit entry %d not found", seq)
	}
	r := s.auditHashes(ctx)
	proof, err := tlog.ProveRecord(size, seq, r)
	if err != nil {
		return AuditInclusion{}, fmt.Errorf("audit proof: %w", err)
	}
	root, err := tlog.TreeHash(size, r)
	if err != nil {
		return AuditInclusion{}, fmt.Errorf("audit tree: %w", err)
	}
	return AuditInclusion{Entry: e, Leaf: AuditLeaf(e), Size: size, Root: root, Proof: proof, Checkpoint: cp}, nil
}

// AuditConsistency proves that the tree of size To extends the tree of size From.
type AuditConsistency struct {
	From, To                     int64
	FromRoot, ToRoot             tlog.Hash
	Proof                        tlog.TreeProof
	FromCheckpoint, ToCheckpoint []byte // the signed checkpoints of those sizes, when signed
}

// ProveAuditConsistency returns a proof that the tree of size to (0: the latest checkpoint's)
// extends the tree of size from.
func (s *Service) ProveAuditConsistency(ctx context.Context, from, to int64) (AuditConsistency, error) {
	to, toCP, err := s.auditTreeSize(ctx, to)
	if err != nil {
		return AuditConsistency{}, err
	}
	if from < 1 || from > to {
		return AuditConsistency{}, Errorf(EINVALID, "from must be between 1 and %d", to)
	}
	_, fromCP, err := s.auditTreeSize(ctx, from)
	if err != nil {
		return AuditConsistency{}, err
	}
	r := s.auditHashes(ctx)
	proof, err := tlog.ProveTree(to, from, r)
	if err != nil {
		return AuditConsistency{}, fmt.Errorf("audit proof: %w", err)
	}
	c := AuditConsistency{From: from, To: to, Proof: proof, FromCheckpoint: fromCP, ToCheckpoint: toCP}
	if c.FromRoot, err = tlog.TreeHash(from, r); err != nil {
		return AuditConsistency{}, err
	}
	if c.ToRoot, err = tlog.TreeHash(to, r); err != nil {
		return AuditConsistency{}, err
	}
	return c, nil
}

// Audit yields the audit entries q selects, each with the leaf hash stored for it in the tree.
func (s *Service) Audit(ctx context.Context, q AuditQuery) iter.Seq2[AuditEntry, error] {
	return func(yield func(AuditEntry, error) bool) {
		const chunk = 256
		buf := make([]AuditEntry, 0, chunk)
		emit := func() bool {
			idx := make([]int64, len(buf))
			for i, e := range buf {
				idx[i] = tlog.StoredHashIndex(0, e.Seq)
			}
			hashes, err := s.store.AuditHashes(ctx, idx)
			if err != nil && !errors.Is(err, ErrNotFound) {
				yield(AuditEntry{}, err)
				return false
			}
			for i := range buf {
				if i < len(hashes) {
					buf[i].LeafHash = hashes[i]
				}
				if !yield(buf[i], nil) {
					return false
				}
			}
			buf = buf[:0]
			return true
		}
		for e, err := range s.store.ListAudit(ctx, q) {
			if err != nil {
				yield(e, err)
				return
			}
			if buf = append(buf, e); len(buf) == chunk && !emit() {
				return
			}
		}
		if len(buf) > 0 {
			emit()
		}
	}
}

// AuditTree computes the audit tree's root from its leaf hashes in order, in constant memory: a
// verifier feeds it every entry's recomputed leaf hash and compares the roots at checkpoint sizes.
type AuditTree struct {
	n     int64
	stack []tlog.Hash // the roots of the complete subtrees, largest first
}

// Add appends a leaf hash.
func (t *AuditTree) Add(h tlog.Hash) {
	t.stack = append(t.stack, h)
	for n := t.n; n&1 == 1; n >>= 1 {
		k := len(t.stack)
		t.stack = append(t.stack[:k-2], tlog.NodeHash(t.stack[k-2], t.stack[k-1]))
	}
	t.n++
}

// Clone returns a copy that grows independently.
func (t *AuditTree) Clone() AuditTree {
	return AuditTree{n: t.n, stack: append([]tlog.Hash(nil), t.stack...)}
}

// Size is the number of leaves added.
func (t *AuditTree) Size() int64 { return t.n }

// Root is the root hash of the tree of the leaves added (RFC 6962: the smaller subtrees fold into
// the larger ones from the right).
func (t *AuditTree) Root() tlog.Hash {
	if len(t.stack) == 0 {
		return tlog.Hash{}
	}
	h := t.stack[len(t.stack)-1]
	for i := len(t.stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.stack[i], h)
	}
	return h
}

// HashString is a tree hash as the operator API writes it (base64).
func HashString(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

// ParseHash parses a tree hash written by HashString.
func ParseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, errors.New("malformed hash")
	}
	copy(h[:], b)
	return h, nil
}

// AuditSize returns the number of entries in the audit log.
func (s *Service) AuditSize(ctx context.Context) (int64, error) {
	n, err := s.store.AuditSize(ctx)
	return n, wrap("audit log size", err)
}

// AuditStatus is what a server's own continuous check of the audit log found: the log up to
// VerifiedTo entries hashes to the signed checkpoint of that size, entry by entry against the
// hashes stored when they were written. A Problem stops the check until the server restarts.
type AuditStatus struct {
	VerifiedTo int64     // the size of the latest checkpoint the log matched; 0 before the first
	SignedAt   time.Time // when that checkpoint was signed
	CheckedAt  time.Time // when the check last ran
	Problem    string    // what did not match; "" while everything does
}

// auditWatch is the state of the continuous check: the tree of the entries verified so far.
type auditWatch struct {
	tree   AuditTree
	status AuditStatus
}

// AuditStatus returns what the continuous check of the audit log found (on a server; a one-shot
// process checks nothing).
func (s *Service) AuditStatus() AuditStatus {
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	return s.audit.watch.status
}

// auditWatchInterval is how often a server checks the entries added to the log.
const auditWatchInterval = 2 * time.Second

// watchAudit extends the continuous check to the latest checkpoint: it reads the entries it has
// not checked yet (all of them on the first run), compares each with its stored hash, and the
// root with the checkpoint's. Only this goroutine changes the tree, so the lock is held only to
// publish the status.
func (s *Service) watchAudit(ctx context.Context) error {
	s.audit.mu.Lock()
	w := &s.audit.watch
	failed, n := w.status.Problem != "", w.tree.Size()
	s.audit.mu.Unlock()
	if failed {
		return nil
	}
	c, err := s.store.AuditCheckpoint(ctx, -1)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	problem := ""
	if c.Size > n {
		keys, err := s.store.AuditKeys(ctx)
		if err != nil {
			return fmt.Errorf("audit keys: %w", err)
		}
		var vs []string
		for _, k := range keys {
			vs = append(vs, k.Verifier)
		}
		_, size, root, err := OpenAuditCheckpoint(c.Note, vs)
		if err != nil {
			problem = fmt.Sprintf("the latest checkpoint does not verify: %v", err)
		} else {
			tree := w.tree.Clone() // the published tree changes only when the whole step matched
			for e, err := range s.Audit(ctx, AuditQuery{From: n, Limit: int(size - n)}) {
				if err != nil {
					return err
				}
				if e.Seq != tree.Size() {
					problem = fmt.Sprintf("entry %d is missing", tree.Size())
					break
				}
				h := tlog.RecordHash(AuditLeaf(e))
				if e.LeafHash != h {
					problem = fmt.Sprintf("entry %d does not match the hash stored when it was written", e.Seq)
					break
				}
				tree.Add(h)
			}
			switch {
			case problem != "":
			case tree.Size() != size:
				problem = fmt.Sprintf("entries from %d on are missing: the checkpoint has %d", tree.Size(), size)
			case tree.Root() != root:
				problem = fmt.Sprintf("the log does not hash to the checkpoint of size %d", size)
			default:
				s.audit.mu.Lock()
				w.tree = tree
				w.status.VerifiedTo, w.status.SignedAt = size, c.SignedAt
				s.audit.mu.Unlock()
			}
		}
	}
	s.audit.mu.Lock()
	w.status.CheckedAt = s.clock.Now()
	if problem != "" {
		w.status.Problem = problem
		s.logs.Warn("audit log check", errors.New(problem))
	}
	s.audit.mu.Unlock()
	return nil
}
