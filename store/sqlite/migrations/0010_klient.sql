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
