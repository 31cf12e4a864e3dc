-- Uptime kept with each machine, so listing machines reads no history:
-- state_since is when the machine entered its current state, uptime_base
-- the nanoseconds it spent Running (state 4) before that. Both are backfilled
-- from the history and kept by SetMachineState from now on.
ALTER TABLE machines ADD COLUMN state_since INTEGER NOT NULL DEFAULT 0;
ALTER TABLE machines ADD COLUMN uptime_base INTEGER NOT NULL DEFAULT 0;

UPDATE machines SET state_since = coalesce(
	(SELECT at FROM machine_history h WHERE h.machine_id = machines.id ORDER BY at DESC, id DESC LIMIT 1),
	created_at);

UPDATE machines SET uptime_base = coalesce((
	SELECT sum(nxt - at) FROM (
		SELECT at, state, lead(at) OVER (ORDER BY at, id) AS nxt
		FROM machine_history h WHERE h.machine_id = machines.id)
	WHERE state = 4 AND nxt IS NOT NULL), 0);
