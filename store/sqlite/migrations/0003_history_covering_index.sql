-- State history reads (the collector's, the machine checker's) are served
-- from the index alone: it covers every column they read.
CREATE INDEX machine_history_covering ON machine_history (machine_id, at, id, state, reason);
DROP INDEX machine_history_machine_at;
