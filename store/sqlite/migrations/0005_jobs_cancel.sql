-- A running job asked to stop (POST /api/v1/jobs/{id}/cancel): its worker
-- sees the reason at its next lease renewal and fails the job with it.
ALTER TABLE jobs ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
-- The fair-share claim counts each owner's running jobs.
CREATE INDEX jobs_status_owner ON jobs (status, owner_id);
