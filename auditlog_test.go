package openconsole_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// memHashes is tlog's stored hashes kept in memory, as the reference for the tree computations.
type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(*m)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

// TestAuditTreeMatchesTlog: the verifier's constant-memory tree has tlog's root at every size.
func TestAuditTreeMatchesTlog(t *testing.T) {
	var stored memHashes
	var tree openconsole.AuditTree
	for n := int64(0); n < 300; n++ {
		leaf := []byte(fmt.Sprintf("leaf %d", n))
		hs, err := tlog.StoredHashes(n, leaf, &stored)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		tree.Add(tlog.RecordHash(leaf))
		want, err := tlog.TreeHash(n+1, &stored)
		if err != nil {
			t.Fatal(err)
		}
		if got := tree.Root(); got != want {
			t.Fatalf("size %d: root %v, tlog says %v", n+1, got, want)
		}
	}
}

// auditChanges makes n administrative changes of several kinds.
func auditChanges(t *testing.T, svc *openconsole.Service, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		var err error
		switch i % 3 {
		case 0:
			_, err = svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: i + 1, Note: fmt.Sprintf("change %d", i)})
		case 1:
			_, err = svc.CreateUser(ctx, openconsole.UserInput{Username: fmt.Sprintf("user%d-%d", i, time.Now().UnixNano()), Password: "password-123"})
		case 2:
			var l openconsole.License
			if l, err = svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1}); err == nil {
				_, err = svc.SuspendLicense(ctx, l.Key, 0)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitCheckpoint returns the checkpoint of size n, once signed: signatures come at most once per
// AuditSigningInterval, so the one right after a burst of changes may be older.
func waitCheckpoint(t *testing.T, svc *openconsole.Service, n int64) openconsole.AuditCheckpoint {
	t.Helper()
	deadline := time.Now().Add(10 * openconsole.AuditSigningInterval)
	for {
		c, err := svc.AuditCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Size == n {
			return c
		}
		if c.Size > n || time.Now().After(deadline) {
			t.Fatalf("latest checkpoint of size %d, want %d", c.Size, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuditProofs: every entry's inclusion proof, and consistency proofs between sizes, check
// against the roots of the signed checkpoints, whose signatures verify with the audit key.
func TestAuditProofs(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc := newService(t, dsn, openconsole.Options{})
		if _, err := svc.AuditCheckpoint(ctx); openconsole.ErrorCode(err) != openconsole.ENOTFOUND {
			t.Fatalf("checkpoint of an empty log: %v, want ENOTFOUND", err)
		}
		auditChanges(t, svc, 30)
		info, err := svc.AuditKeyInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Held != openconsole.AuditKeyInDatabase || len(info.Verifiers) != 1 || info.Verifier != info.Verifiers[0] {
			t.Fatalf("audit key info %+v", info)
		}
		n := int64(40) // 30 changes; every third is two (a license created, then suspended)
		c := waitCheckpoint(t, svc, n)
		origin, size, root, err := openconsole.OpenAuditCheckpoint(c.Note, []string{info.Verifier})
		if err != nil || size != n || root != c.Root || origin != info.Origin {
			t.Fatalf("checkpoint %q: origin %q size %d root %v, %v; want size %d", c.Note, origin, size, root, err, n)
		}
		// Another key does not verify it.
		_, other, _ := openconsole.NewAuditKey("")
		if _, _, _, err := openconsole.OpenAuditCheckpoint(c.Note, []string{other}); err == nil {
			t.Error("a checkpoint verified with another key")
		}
		for seq := int64(0); seq < n; seq++ {
			p, err := svc.ProveAuditEntry(ctx, seq, 0)
			if err != nil {
				t.Fatal(err)
			}
			if p.Size != n || p.Root != root || string(p.Checkpoint) != string(c.Note) {
				t.Fatalf("proof of %d: size %d root %v, want the checkpoint's", seq, p.Size, p.Root)
			}
			if string(p.Leaf) != string(openconsole.AuditLeaf(p.Entry)) || p.Entry.Seq != seq {
				t.Fatalf("proof of %d: leaf %s of entry %d", seq, p.Leaf, p.Entry.Seq)
			}
			if err := tlog.CheckRecord(p.Proof, n, root, seq, tlog.RecordHash(p.Leaf)); err != nil {
				t.Fatalf("proof of %d does not check: %v", seq, err)
			}
			// The same proof does not prove another leaf.
			if err := tlog.CheckRecord(p.Proof, n, root, seq, tlog.RecordHash(append(p.Leaf, ' '))); err == nil {
				t.Fatalf("proof of %d checks for a changed leaf", seq)
			}
		}
		// Proofs in smaller trees, and that the big tree extends each of them.
		for _, m := range []int64{1, 2, 3, 7, 8, 9, 16, 31, 39, 40} {
			p, err := svc.ProveAuditEntry(ctx, m-1, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p.Proof, m, p.Root, m-1, tlog.RecordHash(p.Leaf)); err != nil {
				t.Fatalf("proof of %d in a tree of %d: %v", m-1, m, err)
			}
			cp, err := svc.ProveAuditConsistency(ctx, m, 0)
			if err != nil {
				t.Fatal(err)
			}
			if cp.To != n || cp.ToRoot != root || cp.FromRoot != p.Root {
				t.Fatalf("consistency %d..: to %d roots %v %v", m, cp.To, cp.FromRoot, cp.ToRoot)
			}
			if err := tlog.CheckTree(cp.Proof, n, root, m, cp.FromRoot); err != nil {
				t.Fatalf("consistency %d..%d: %v", m, n, err)
			}
		}
		for _, bad := range [][2]int64{{40, 0}, {5, 5}, {0, 41}, {-1, 0}} {
			if _, err := svc.ProveAuditEntry(ctx, bad[0], bad[1]); openconsole.ErrorCode(err) != openconsole.EINVALID {
				t.Errorf("proof of %d in %d: %v, want EINVALID", bad[0], bad[1], err)
			}
		}
		if _, err := svc.ProveAuditConsistency(ctx, 41, 0); openconsole.ErrorCode(err) != openconsole.EINVALID {
			t.Errorf("consistency from 41: %v, want EINVALID", err)
		}
	})
}

// TestAuditSigningPace: a checkpoint is signed when the log has grown, at most once per
// AuditSigningInterval.
func TestAuditSigningPace(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	svc := newService(t, sqlstoretest.DSN(t, "sqlite"), openconsole.Options{Now: clk.Now})
	auditChanges(t, svc, 1)
	c, err := svc.AuditCheckpoint(ctx)
	if err != nil || c.Size != 1 {
		t.Fatalf("first checkpoint: size %d, %v", c.Size, err)
	}
	auditChanges(t, svc, 1)
	if c, _ := svc.AuditCheckpoint(ctx); c.Size != 1 {
		t.Errorf("checkpoint right after the first: size %d, want 1 (no second signature within %v)", c.Size, openconsole.AuditSigningInterval)
	}
	clk.Add(openconsole.AuditSigningInterval)
	if c, _ := svc.AuditCheckpoint(ctx); c.Size != 2 {
		t.Errorf("checkpoint a second later: size %d, want 2", c.Size)
	}
	if c2, _ := svc.AuditCheckpoint(ctx); c2.Size != 2 {
		t.Errorf("checkpoint with nothing new: size %d, want 2", c2.Size)
	}
}

// TestAuditKeyFile: a key from a file takes over from the one in the database, which is erased; a
// server without the file then refuses to start, a one-shot process does not sign.
func TestAuditKeyFile(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		first := newService(t, dsn, openconsole.Options{})
		auditChanges(t, first, 1)
		if _, err := first.AuditCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
		skey, vkey, err := openconsole.NewAuditKey("audit.example.com")
		if err != nil {
			t.Fatal(err)
		}
		svc := newService(t, dsn, openconsole.Options{AuditKey: skey + "\n"})
		info, err := svc.AuditKeyInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Verifier != vkey || info.Held != openconsole.AuditKeyInFile || info.Origin != "audit.example.com" || len(info.Verifiers) != 2 {
			t.Fatalf("after the key file: %+v", info)
		}
		st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		keys, err := st.AuditKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.Signer != "" {
				t.Errorf("key %s: its private key is still in the database", k.Verifier)
			}
		}
		auditChanges(t, svc, 1)
		c := waitCheckpoint(t, svc, 2)
		if _, size, _, err := openconsole.OpenAuditCheckpoint(c.Note, []string{vkey}); err != nil || size != 2 {
			t.Fatalf("checkpoint signed with the file's key: size %d, %v", size, err)
		}
		if _, err := openconsole.NewService(ctx, st, openconsole.Options{}); err == nil || !strings.Contains(err.Error(), "--audit-key-file") {
			t.Errorf("a server without the key file started: %v", err)
		}
		oneShot, err := openconsole.NewService(ctx, st, openconsole.Options{OneShot: true})
		if err != nil {
			t.Fatal(err)
		}
		defer oneShot.Close()
		auditChanges(t, oneShot, 1)
		if c, err := oneShot.AuditCheckpoint(ctx); err != nil || c.Size != 2 {
			t.Errorf("a one-shot process without the key: checkpoint size %d, %v; want the last signed (2)", c.Size, err)
		}
		if _, _, err := openconsole.ParseAuditSigner(vkey); err == nil {
			t.Error("a verifier key parsed as a signing key")
		}
	})
}

// failingAudit fails every append to the audit log.
type failingAudit struct{ openconsole.Store }

type failingAuditTx struct{ openconsole.Tx }

func (f failingAudit) Update(c context.Context, fn func(openconsole.Tx) error) error {
	return f.Store.Update(c, func(tx openconsole.Tx) error { return fn(failingAuditTx{tx}) })
}

func (failingAuditTx) AppendAudit(openconsole.AuditEntry, int64, []tlog.Hash) error {
	return errors.New("the audit log is full")
}

// TestAuditEntryOnlyWithChange: a change that fails leaves no entry, and a change whose entry
// cannot be written does not happen.
func TestAuditEntryOnlyWithChange(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc := newService(t, dsn, openconsole.Options{})
		l := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1, Key: "AUDIT-ONLY-WITH-CHANGE"})
		st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		size := func() int64 {
			n, err := st.AuditSize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := size()
		if _, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1, Key: l.Key}); openconsole.ErrorCode(err) != openconsole.ECONFLICT {
			t.Fatalf("duplicate key: %v", err)
		}
		if _, err := svc.SuspendLicense(ctx, l.Key, l.Version+5); err == nil {
			t.Fatal("a suspension with a stale version succeeded")
		}
		if got := size(); got != before {
			t.Errorf("failed changes wrote %d audit entries", got-before)
		}

		broken, err := openconsole.NewService(ctx, failingAudit{st}, openconsole.Options{OneShot: true})
		if err != nil {
			t.Fatal(err)
		}
		defer broken.Close()
		if _, err := broken.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1, Key: "NEVER-CREATED"}); err == nil {
			t.Fatal("a change succeeded without its audit entry")
		}
		if _, err := broken.SuspendLicense(ctx, l.Key, 0); err == nil {
			t.Fatal("a suspension succeeded without its audit entry")
		}
		if _, err := svc.License(ctx, "NEVER-CREATED"); openconsole.ErrorCode(err) != openconsole.ENOTFOUND {
			t.Errorf("the license whose entry failed exists: %v", err)
		}
		if got, _ := svc.License(ctx, l.Key); got.Status(time.Now()) != openconsole.StatusActive {
			t.Errorf("the license whose suspension's entry failed is %s", got.Status(time.Now()))
		}
		if got := size(); got != before {
			t.Errorf("failed changes wrote %d audit entries", got-before)
		}
	})
}

// TestAuditConcurrentAppends: administrative changes racing on two servers of one database get
// dense sequence numbers, and the stored tree is the tree of the entries as they are read back.
func TestAuditConcurrentAppends(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		servers := []*openconsole.Service{newService(t, dsn, openconsole.Options{}), newService(t, dsn, openconsole.Options{})}
		const workers, each = 16, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				svc := servers[w%2]
				for i := 0; i < each; i++ {
					if _, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1, Note: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
						errs <- err
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		c := waitCheckpoint(t, servers[1], workers*each)
		info, _ := servers[0].AuditKeyInfo(ctx)
		v := openconsole.NewAuditVerifier(info.Verifiers)
		v.AddCheckpoint("latest", c.Note)
		for e, err := range servers[0].Audit(ctx, openconsole.AuditQuery{}) {
			if err != nil {
				t.Fatal(err)
			}
			v.Add(e)
		}
		res := v.Finish()
		if !res.OK || res.Entries != workers*each || res.VerifiedTo != workers*each {
			t.Fatalf("verification after concurrent appends: %+v", res)
		}
	})
}
