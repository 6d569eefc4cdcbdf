package openconsole

import (
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/tlog"
)

// AuditVerifier checks an audit log as a reader sees it, without trusting the server: fed every
// entry in order (with the leaf hash the server says it stored), it recomputes each leaf and the
// tree, and compares the tree's root with signed checkpoints at their sizes: the server's latest
// and any an auditor saved earlier. It keeps O(log n) hashes, whatever the log's length.
type AuditVerifier struct {
	verifiers []string
	tree      AuditTree
	marks     map[int64][]*AuditCheckpointCheck // checkpoints by the tree size they fix
	checks    []*AuditCheckpointCheck
	matched   int64 // the largest checkpoint size whose root matched
	problems  []AuditProblem
	unsigned  bool // some entry has no stored leaf hash
}

// AuditCheckpointCheck is the outcome of one checkpoint.
type AuditCheckpointCheck struct {
	Name    string    `json:"name"` // "latest", or the file it was read from
	Origin  string    `json:"origin,omitempty"`
	Size    int64     `json:"size"`
	Root    tlog.Hash `json:"-"`
	OK      bool      `json:"ok"`
	Problem string    `json:"problem,omitempty"`
}

// AuditProblem is something that does not match. Seq names the entry when one is to blame (else
// -1); Between bounds where the change lies when only a root disagrees.
type AuditProblem struct {
	Seq     int64     `json:"seq"`
	Between *[2]int64 `json:"between,omitempty"`
	Message string    `json:"message"`
}

// AuditVerification is a verification's outcome.
type AuditVerification struct {
	OK          bool                    `json:"ok"`
	Entries     int64                   `json:"entries"`
	RootHash    string                  `json:"rootHash"`
	VerifiedTo  int64                   `json:"verifiedTo"` // the largest checkpoint size the log matches
	Checkpoints []*AuditCheckpointCheck `json:"checkpoints"`
	Problems    []AuditProblem          `json:"problems"`
}

// maxAuditProblems bounds the problems a verification lists.
const maxAuditProblems = 20

// NewAuditVerifier returns a verifier that accepts checkpoints signed by any of the verifier keys.
func NewAuditVerifier(verifiers []string) *AuditVerifier {
	return &AuditVerifier{verifiers: verifiers, marks: map[int64][]*AuditCheckpointCheck{}}
}

// AddCheckpoint adds a signed checkpoint to compare the log with; add them before the entries. A
// checkpoint that does not verify is a problem of its own.
func (v *AuditVerifier) AddCheckpoint(name string, signed []byte) {
	c := &AuditCheckpointCheck{Name: name}
	v.checks = append(v.checks, c)
	origin, size, root, err := OpenAuditCheckpoint(signed, v.verifiers)
	if err != nil {
		c.Problem = err.Error()
		v.problem(AuditProblem{Seq: -1, Message: fmt.Sprintf("checkpoint %s: %v", name, err)})
		return
	}
	c.Origin, c.Size, c.Root = origin, size, root
	v.marks[size] = append(v.marks[size], c)
}

func (v *AuditVerifier) problem(p AuditProblem) {
	if len(v.problems) < maxAuditProblems {
		v.problems = append(v.problems, p)
	}
}

// Add checks the next entry: its sequence number, its leaf against the stored leaf hash, and the
// tree's root against every checkpoint of the size the tree now has.
func (v *AuditVerifier) Add(e AuditEntry) {
	want := v.tree.Size()
	if e.Seq != want {
		if e.Seq > want {
			v.problem(AuditProblem{Seq: want, Message: fmt.Sprintf("entry %d is missing (the next entry is %d)", want, e.Seq)})
		} else {
			v.problem(AuditProblem{Seq: e.Seq, Message: fmt.Sprintf("entry %d appears out of order (after %d)", e.Seq, want-1)})
		}
		// Go on from here, so that what follows is checked too (it will not match checkpoints).
		for v.tree.Size() < e.Seq {
			v.tree.Add(tlog.Hash{})
			v.checkMarks()
		}
	}
	h := tlog.RecordHash(AuditLeaf(e))
	switch {
	case e.LeafHash == (tlog.Hash{}):
		v.unsigned = true
		v.problem(AuditProblem{Seq: e.Seq, Message: fmt.Sprintf("entry %d has no hash in the tree", e.Seq)})
	case e.LeafHash != h:
		v.problem(AuditProblem{Seq: e.Seq, Message: fmt.Sprintf("entry %d does not match the hash stored when it was written: it was changed", e.Seq)})
	}
	v.tree.Add(h)
	v.checkMarks()
}

func (v *AuditVerifier) checkMarks() {
	n := v.tree.Size()
	cs := v.marks[n]
	if len(cs) == 0 {
		return
	}
	root := v.tree.Root()
	for _, c := range cs {
		if c.Root == root {
			c.OK = true
			v.matched = max(v.matched, n)
			continue
		}
		c.Problem = "the log's first entries do not hash to this checkpoint's root"
		v.problem(AuditProblem{Seq: -1, Between: &[2]int64{v.matched, n - 1},
			Message: fmt.Sprintf("the log does not extend checkpoint %s (size %d): an entry from %d to %d was changed, removed or reordered since it was signed",
				c.Name, n, v.matched, n-1)})
	}
}

// Finish ends the verification.
func (v *AuditVerifier) Finish() AuditVerification {
	n := v.tree.Size()
	sizes := make([]int64, 0, len(v.marks))
	for size := range v.marks {
		if size > n {
			sizes = append(sizes, size)
		}
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	for _, size := range sizes {
		for _, c := range v.marks[size] {
			c.Problem = fmt.Sprintf("the log has %d entries, fewer than this checkpoint's %d", n, size)
			v.problem(AuditProblem{Seq: n, Message: fmt.Sprintf("entries from %d on are missing: checkpoint %s has %d", n, c.Name, size)})
		}
	}
	out := AuditVerification{Entries: n, RootHash: HashString(v.tree.Root()), VerifiedTo: v.matched,
		Checkpoints: v.checks, Problems: v.problems}
	if out.Checkpoints == nil {
		out.Checkpoints = []*AuditCheckpointCheck{}
	}
	// Problems stay in the order they were found: a checkpoint's signature, then entry by entry
	// (an entry's own mismatch before the checkpoint whose root it breaks), then missing entries.
	if out.Problems == nil {
		out.Problems = []AuditProblem{}
	}
	out.OK = len(out.Problems) == 0
	return out
}
