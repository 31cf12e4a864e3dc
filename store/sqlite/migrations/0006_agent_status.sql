-- What Kloud knows of each machine's agent, in a narrow table of its own:
-- heartbeats (every 10 s from every machine) rewrite this small row, never
-- the machine's wide one (metadata, reason, ...), and a machine read joins
-- it. machines.last_seen is no longer written; its values move here.
CREATE TABLE machine_agents (
	machine_id TEXT PRIMARY KEY,
	last_seen  INTEGER NOT NULL,
	version    TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

INSERT INTO machine_agents (machine_id, last_seen)
	SELECT id, last_seen FROM machines WHERE last_seen IS NOT NULL;
