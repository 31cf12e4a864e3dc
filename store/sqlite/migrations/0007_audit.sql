-- The audit log: who did what, newest first by (at, id).
CREATE TABLE audit (
	id         TEXT PRIMARY KEY,
	at         INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	target     TEXT NOT NULL DEFAULT '',
	owner_id   TEXT NOT NULL DEFAULT '',
	outcome    TEXT NOT NULL,
	request_id TEXT NOT NULL DEFAULT '',
	detail     TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_actor ON audit (actor, at);
CREATE INDEX audit_owner ON audit (owner_id, at);
CREATE INDEX audit_target ON audit (target, at);
