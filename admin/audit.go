package admin

import (
	"net/http"
	"strconv"

	"openconsole"
)

func (s *Server) auditRoutes() {
	s.route("GET /audit", reader, s.listAudit)
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
