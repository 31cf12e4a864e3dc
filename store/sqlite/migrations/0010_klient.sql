-- Machine access (issue 11): which replica holds each machine's agent
-- tunnel, machines shared with users who do not own them, and when each
-- machine was last in use, in a narrow table of its own (like
-- machine_agents) that a machine read joins.
CREATE TABLE machine_tunnels (
	machine_id   TEXT PRIMARY KEY,
	replica      TEXT NOT NULL,
	conn_id      TEXT NOT NULL,
	connected_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE machine_shares (
	machine_id TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	owner_id   TEXT NOT NULL,
	permission TEXT NOT NULL CHECK (permission IN ('use', 'control')),
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (machine_id, user_id)
) WITHOUT ROWID;
CREATE INDEX machine_shares_user ON machine_shares (user_id, created_at);

CREATE TABLE machine_activity (
	machine_id TEXT PRIMARY KEY,
	at         INTEGER NOT NULL
) WITHOUT ROWID;

-- Terminal sessions: who opened which on which machine through which
-- replica, when, and how each ended (closed_at and exit_code NULL while
-- open).
CREATE TABLE terminal_sessions (
	id         TEXT PRIMARY KEY,
	machine_id TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	owner_id   TEXT NOT NULL,
	name       TEXT NOT NULL DEFAULT '',
	replica    TEXT NOT NULL DEFAULT '',
	opened_at  INTEGER NOT NULL,
	closed_at  INTEGER,
	exit_code  INTEGER
) WITHOUT ROWID;
CREATE INDEX terminal_sessions_machine ON terminal_sessions (machine_id, opened_at);
