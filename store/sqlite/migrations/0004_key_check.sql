-- The check value sealed with the secret key at first open: an open with
-- another key is refused instead of failing on every secret later.
CREATE TABLE key_check (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	sealed BLOB NOT NULL
);
