-- Template versions and stack updates: a template's versions (version 1 is
-- the content it was created with), the version new stacks use, the version
-- and sealed secret variables each stack pins, the plans stack plan jobs
-- saved (their plan file sealed), each stack's last drift check and each
-- job's phase timings.
ALTER TABLE templates ADD COLUMN active_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE stacks ADD COLUMN template_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE stacks ADD COLUMN secret_variables BLOB;

CREATE TABLE template_versions (
	template_id TEXT NOT NULL,
	version     INTEGER NOT NULL,
	format      TEXT NOT NULL,
	content     TEXT NOT NULL,
	message     TEXT NOT NULL DEFAULT '',
	created_by  TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (template_id, version)
) WITHOUT ROWID;

INSERT INTO template_versions (template_id, version, format, content, created_by, created_at)
	SELECT id, 1, format, content, owner_id, created_at FROM templates;

CREATE TABLE stack_plans (
	id               TEXT PRIMARY KEY,
	stack_id         TEXT NOT NULL,
	owner_id         TEXT NOT NULL,
	template_version INTEGER NOT NULL,
	state_serial     INTEGER NOT NULL,
	state_lineage    TEXT NOT NULL DEFAULT '',
	file             BLOB,
	result           TEXT NOT NULL DEFAULT '{}',
	created_at       INTEGER NOT NULL
);
CREATE INDEX stack_plans_stack ON stack_plans (stack_id);

CREATE TABLE stack_drift (
	stack_id   TEXT PRIMARY KEY,
	checked_at INTEGER NOT NULL,
	resources  TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;

CREATE TABLE job_timings (
	job_id  TEXT PRIMARY KEY,
	timings TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;

CREATE INDEX jobs_stack ON jobs (stack_id, created_at);
