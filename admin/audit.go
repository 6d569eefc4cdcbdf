package admin

import (
	"net/http"
	"strconv"

	"openconsole"
)

func (s *Server) auditRoutes() {
	s.route("GET /audit", reader, s.listAudit)
	s.route("GET /audit/key", reader, s.auditKey)
	s.route("GET /audit/checkpoint", reader, s.auditCheckpoint)
	s.route("GET /audit/proof/{seq}", reader, s.auditProof)
	s.route("GET /audit/consistency", reader, s.auditConsistency)
}

// auditKey is GET /audit/key: the verifier key of the audit log's checkpoints.
func (s *Server) auditKey(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	k, err := s.svc.AuditKeyInfo(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AuditKey(k))
}

// auditCheckpoint is GET /audit/checkpoint: the latest signed checkpoint (one is signed first
// when the log has grown, at most once a second).
func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	c, err := s.svc.AuditCheckpoint(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Checkpoint(c))
}

// sizeParam reads a tree size parameter: absent is 0 (the latest checkpoint's size).
func sizeParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, openconsole.Errorf(openconsole.EINVALID, "%s must be a tree size (a positive integer)", name)
	}
	return n, nil
}

// auditProof is GET /audit/proof/{seq}?size=N: a proof that entry seq is in the tree of size N
// (default: the latest checkpoint's).
func (s *Server) auditProof(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 0 {
		return openconsole.Errorf(openconsole.EINVALID, "the entry must be a sequence number")
	}
	size, err := sizeParam(r, "size")
	if err != nil {
		return err
	}
	in, err := s.svc.ProveAuditEntry(r.Context(), seq, size)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Inclusion(in))
}

// auditConsistency is GET /audit/consistency?from=M&to=N: a proof that the tree of size N
// (default: the latest checkpoint's) extends the tree of size M.
func (s *Server) auditConsistency(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	from, err := sizeParam(r, "from")
	if err != nil {
		return err
	}
	if from == 0 {
		return openconsole.MissingField("from")
	}
	to, err := sizeParam(r, "to")
	if err != nil {
		return err
	}
	c, err := s.svc.ProveAuditConsistency(r.Context(), from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Consistency(c))
}

// listAudit is GET /audit?after=SEQ&limit=&action=&target=&actor=: entries after the one numbered
// after (all from the first without it), in order. A license can be named by its key in target
// (license:KEY): it is looked up by the key's hash, as the log names it.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	aq := openconsole.AuditQuery{Limit: limit + 1, Action: q.Get("action"), Target: q.Get("target"), Actor: q.Get("actor")}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < -1 {
			return openconsole.Errorf(openconsole.EINVALID, "after must be a sequence number")
		}
		aq.From = n + 1
	}
	if c := q.Get("cursor"); c != "" {
		n, err := openconsole.ParseIDCursor('a', c)
		if err != nil {
			return err
		}
		aq.From = n + 1
	}
	if key, ok := cutPrefix(aq.Target, "license:"); ok && len(key) != 16 {
		aq.Target = openconsole.LicenseTarget(key)
	}
	return writePage(w, s.svc.Audit(r.Context(), aq), limit, Audit,
		func(e openconsole.AuditEntry) string { return openconsole.IDCursor('a', e.Seq) })
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
