-- Cost control: budgets, schedules, webhooks and their deliveries, and the
-- validity dates of hashmap rules.
CREATE TABLE budgets (
	scope        TEXT PRIMARY KEY,
	owner_id     TEXT NOT NULL,
	amount       TEXT NOT NULL,
	period       TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
	warn_at      TEXT NOT NULL DEFAULT '[]',
	action       TEXT NOT NULL CHECK (action IN ('stop', 'notify')),
	period_start INTEGER NOT NULL DEFAULT 0,
	notified     TEXT NOT NULL DEFAULT '[]',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE INDEX budgets_owner ON budgets (owner_id, scope);

CREATE TABLE schedules (
	target     TEXT PRIMARY KEY,
	owner_id   TEXT NOT NULL,
	autostart  TEXT NOT NULL DEFAULT '',
	autostop   TEXT NOT NULL DEFAULT '',
	timezone   TEXT NOT NULL DEFAULT 'UTC',
	checked_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE webhooks (
	id         TEXT PRIMARY KEY,
	owner_id   TEXT NOT NULL,
	url        TEXT NOT NULL,
	events     TEXT NOT NULL,
	secret     BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, created_at);

CREATE TABLE webhook_deliveries (
	id         TEXT PRIMARY KEY,
	webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	event      TEXT NOT NULL,
	body       BLOB NOT NULL,
	status     TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts   TEXT NOT NULL DEFAULT '[]',
	n_attempts INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	next_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);

CREATE TABLE hashmap_validity (
	rule_id  TEXT PRIMARY KEY,
	start_at INTEGER NOT NULL DEFAULT 0,
	end_at   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
