-- Seats in constant time. A license's taken seats are kept on its row (taken), changed in the same
-- transaction as every session that takes or frees one, instead of being counted per activation. A
-- session holds a seat while it is neither revoked nor ended; ended_at is set when a session that
-- has been idle past the session TTL is swept (its seat is given back without anyone touching it).
ALTER TABLE licenses ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN ended_at BIGINT;
-- The client address a session was activated from ('' when unknown).
ALTER TABLE sessions ADD COLUMN addr TEXT NOT NULL DEFAULT '';

UPDATE licenses SET taken = (SELECT COUNT(*) FROM sessions s WHERE s.license_id = licenses.id AND s.revoked_at IS NULL);

DROP INDEX sessions_live;
-- The sessions that hold a seat by last activity: the sweeps of idle sessions read only the front
-- of it (sessions idle past the timeout leave it when they are ended).
CREATE INDEX sessions_idle ON sessions (last_seen_at) WHERE revoked_at IS NULL AND ended_at IS NULL;
-- Listings in issue order, of one license or of all (license by license), paged by (ts, id).
CREATE INDEX sessions_license_ts ON sessions (license_id, ts, id);
