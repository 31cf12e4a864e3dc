-- Rated points move from a row each to a row per rated period whose data
-- column holds every point of the period in a compact binary form
-- (store/sqlite/ratedblob.go): a period of ten thousand points is one
-- insert. The index columns bound the points' begins and ends, so a window
-- query skips the periods that cannot hold a matching point; qty and price
-- are the sums of the points'. The rows of rated_points are moved here by
-- the Go step of this migration, which then drops that table.
CREATE TABLE rated_periods (
	id       INTEGER PRIMARY KEY,
	scope    TEXT NOT NULL,
	begin_at INTEGER NOT NULL,
	end_at   INTEGER NOT NULL,
	min_b    INTEGER NOT NULL,
	max_b    INTEGER NOT NULL,
	min_e    INTEGER NOT NULL,
	max_e    INTEGER NOT NULL,
	points   INTEGER NOT NULL,
	qty      TEXT NOT NULL,
	price    TEXT NOT NULL,
	data     BLOB NOT NULL
);
CREATE UNIQUE INDEX rated_periods_scope_begin ON rated_periods (scope, begin_at);
CREATE INDEX rated_periods_scope_window ON rated_periods (scope, min_b, max_b, min_e, max_e, points);
CREATE INDEX rated_periods_window ON rated_periods (min_b, max_b, min_e, max_e, points);
