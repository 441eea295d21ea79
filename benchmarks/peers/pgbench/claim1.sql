-- claim 1 + complete 1: two statements, each its own autocommit transaction.
-- jobs/s = tps * 1. Needs a preloaded table (setup.sql) and pgbench -M prepared.
WITH claimed AS (
  UPDATE bench_raw.job_queue AS j
     SET status = 'running', attempts = j.attempts + 1, locked_by = 'pgbench',
         locked_at = now(), updated_at = now()
    FROM (SELECT id FROM bench_raw.job_queue
           WHERE job_type = 'bench' AND status = 'pending' AND run_at <= now()
           ORDER BY run_at, id
             FOR UPDATE SKIP LOCKED
           LIMIT 1) AS s
   WHERE j.id = s.id
  RETURNING j.id
)
SELECT coalesce(min(id), 0) AS claimed_id FROM claimed
\gset
UPDATE bench_raw.job_queue
   SET status = 'completed', locked_by = NULL, locked_at = NULL, updated_at = now()
 WHERE id = :claimed_id;
