-- 0001_init: Kloud's first schema. Times are INTEGER Unix nanoseconds (UTC);
-- NULL for an unset optional time. Money and quantities are TEXT decimal
-- strings (summed exactly by the kloud_decimal_sum aggregate). Secrets are
-- BLOBs sealed with secretbox.

CREATE TABLE users (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	role       TEXT NOT NULL,
	token_hash TEXT UNIQUE,
	created_at INTEGER NOT NULL
);

CREATE TABLE credentials (
	id           TEXT PRIMARY KEY,
	owner_id     TEXT NOT NULL,
	provider     TEXT NOT NULL,
	title        TEXT NOT NULL,
	data         BLOB,
	bootstrap    BLOB,
	verified     INTEGER NOT NULL DEFAULT 0,
	verify_msg   TEXT NOT NULL DEFAULT '',
	bootstrapped INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE INDEX credentials_owner ON credentials (owner_id, created_at);

CREATE TABLE templates (
	id         TEXT PRIMARY KEY,
	owner_id   TEXT NOT NULL,
	title      TEXT NOT NULL,
	provider   TEXT NOT NULL,
	format     TEXT NOT NULL,
	content    TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX templates_owner ON templates (owner_id, created_at);

CREATE TABLE stacks (
	id            TEXT PRIMARY KEY,
	owner_id      TEXT NOT NULL,
	title         TEXT NOT NULL,
	template_id   TEXT NOT NULL,
	credential_id TEXT NOT NULL,
	provider      TEXT NOT NULL,
	variables     TEXT NOT NULL DEFAULT '{}',
	status        TEXT NOT NULL,
	reason        TEXT NOT NULL DEFAULT '',
	agent_secret  BLOB,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
CREATE INDEX stacks_owner ON stacks (owner_id, created_at);
CREATE INDEX stacks_template ON stacks (template_id);
CREATE INDEX stacks_credential ON stacks (credential_id, status);

CREATE TABLE machines (
	id               TEXT PRIMARY KEY,
	stack_id         TEXT NOT NULL,
	owner_id         TEXT NOT NULL,
	provider         TEXT NOT NULL,
	label            TEXT NOT NULL,
	state            INTEGER NOT NULL,
	reason           TEXT NOT NULL DEFAULT '',
	always_on        INTEGER NOT NULL DEFAULT 0,
	metadata         TEXT,
	agent_token_hash TEXT UNIQUE,
	last_seen        INTEGER,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
);
CREATE INDEX machines_owner ON machines (owner_id, id);
CREATE INDEX machines_stack ON machines (stack_id, id);

-- Append-only; a machine's history outlives the machine.
CREATE TABLE machine_history (
	id         INTEGER PRIMARY KEY,
	machine_id TEXT NOT NULL,
	state      INTEGER NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	at         INTEGER NOT NULL
);
CREATE INDEX machine_history_machine_at ON machine_history (machine_id, at, id);

CREATE TABLE jobs (
	id            TEXT PRIMARY KEY,
	kind          TEXT NOT NULL,
	owner_id      TEXT NOT NULL,
	target        TEXT NOT NULL,
	stack_id      TEXT NOT NULL DEFAULT '',
	machine_id    TEXT NOT NULL DEFAULT '',
	credential_id TEXT NOT NULL DEFAULT '',
	status        TEXT NOT NULL,
	percentage    INTEGER NOT NULL DEFAULT 0,
	error         TEXT NOT NULL DEFAULT '',
	worker        TEXT NOT NULL DEFAULT '',
	lease_expires INTEGER,
	created_at    INTEGER NOT NULL,
	started_at    INTEGER,
	finished_at   INTEGER
);
-- One active (queued or running) job per target.
CREATE UNIQUE INDEX jobs_active_target ON jobs (target) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_status_created ON jobs (status, created_at);
CREATE INDEX jobs_created ON jobs (created_at);

CREATE TABLE events (
	job_id     TEXT NOT NULL,
	seq        INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	kind       TEXT NOT NULL,
	message    TEXT NOT NULL DEFAULT '',
	percentage INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	expires INTEGER NOT NULL
);

CREATE TABLE state_versions (
	stack_id   TEXT NOT NULL,
	serial     INTEGER NOT NULL,
	lineage    TEXT NOT NULL DEFAULT '',
	job_id     TEXT NOT NULL DEFAULT '',
	state      BLOB,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (stack_id, serial)
);

CREATE TABLE rating_modules (
	name     TEXT PRIMARY KEY,
	enabled  INTEGER NOT NULL,
	priority INTEGER NOT NULL
);

CREATE TABLE hashmap_services (
	id   TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE
);

CREATE TABLE hashmap_fields (
	id         TEXT PRIMARY KEY,
	service_id TEXT NOT NULL REFERENCES hashmap_services (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	UNIQUE (service_id, name)
);

CREATE TABLE hashmap_groups (
	id   TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE
);

CREATE TABLE hashmap_mappings (
	id         TEXT PRIMARY KEY,
	service_id TEXT REFERENCES hashmap_services (id) ON DELETE CASCADE,
	field_id   TEXT REFERENCES hashmap_fields (id) ON DELETE CASCADE,
	group_id   TEXT REFERENCES hashmap_groups (id) ON DELETE SET NULL,
	value      TEXT NOT NULL DEFAULT '',
	type       TEXT NOT NULL CHECK (type IN ('flat', 'rate')),
	cost       TEXT NOT NULL,
	CHECK ((service_id IS NULL) <> (field_id IS NULL))
);
-- A mapping's (service) or (field, value) is unique within its group; rules
-- without a group form one default group.
CREATE UNIQUE INDEX hashmap_mappings_unique ON hashmap_mappings
	(coalesce(service_id, ''), coalesce(field_id, ''), value, coalesce(group_id, ''));
CREATE INDEX hashmap_mappings_group ON hashmap_mappings (group_id);
CREATE INDEX hashmap_mappings_field ON hashmap_mappings (field_id);

CREATE TABLE hashmap_thresholds (
	id         TEXT PRIMARY KEY,
	service_id TEXT REFERENCES hashmap_services (id) ON DELETE CASCADE,
	field_id   TEXT REFERENCES hashmap_fields (id) ON DELETE CASCADE,
	group_id   TEXT REFERENCES hashmap_groups (id) ON DELETE SET NULL,
	level      TEXT NOT NULL,
	type       TEXT NOT NULL CHECK (type IN ('flat', 'rate')),
	cost       TEXT NOT NULL,
	CHECK ((service_id IS NULL) <> (field_id IS NULL))
);
CREATE UNIQUE INDEX hashmap_thresholds_unique ON hashmap_thresholds
	(coalesce(service_id, ''), coalesce(field_id, ''), level, coalesce(group_id, ''));
CREATE INDEX hashmap_thresholds_group ON hashmap_thresholds (group_id);
CREATE INDEX hashmap_thresholds_field ON hashmap_thresholds (field_id);

CREATE TABLE rated_points (
	id       INTEGER PRIMARY KEY,
	scope    TEXT NOT NULL,
	begin_at INTEGER NOT NULL,
	end_at   INTEGER NOT NULL,
	service  TEXT NOT NULL,
	unit     TEXT NOT NULL DEFAULT '',
	qty      TEXT NOT NULL,
	price    TEXT NOT NULL,
	groupby  TEXT NOT NULL DEFAULT '{}',
	metadata TEXT NOT NULL DEFAULT '{}',
	-- What Summarize groups and filters on, computed at commit: the JSONB
	-- of metadata overlaid with groupby (one lookup finds a key in either),
	-- and the UTC day, ISO week (Monday), month and year Begin falls in.
	attrs    BLOB NOT NULL,
	day_at   INTEGER NOT NULL,
	week_at  INTEGER NOT NULL,
	month_at INTEGER NOT NULL,
	year_at  INTEGER NOT NULL
);
CREATE INDEX rated_points_scope_begin ON rated_points (scope, begin_at, end_at);
CREATE INDEX rated_points_begin ON rated_points (begin_at, end_at);

CREATE TABLE scope_states (
	scope          TEXT PRIMARY KEY,
	last_processed INTEGER NOT NULL
);

CREATE TABLE writer_states (
	scope        TEXT NOT NULL,
	writer       TEXT NOT NULL,
	last_written INTEGER,
	total        TEXT NOT NULL DEFAULT '0',
	PRIMARY KEY (scope, writer)
);
