-- claim 100 + complete 100: two statements, each its own autocommit transaction.
-- jobs/s = tps * 100. Needs a preloaded table (setup.sql) and pgbench -M prepared
-- (the id array travels as one text parameter, cast to bigint[]).
WITH claimed AS (
  UPDATE bench_raw.job_queue AS j
     SET status = 'running', attempts = j.attempts + 1, locked_by = 'pgbench',
         locked_at = now(), updated_at = now()
    FROM (SELECT id FROM bench_raw.job_queue
           WHERE job_type = 'bench' AND status = 'pending' AND run_at <= now()
           ORDER BY run_at, id
             FOR UPDATE SKIP LOCKED
           LIMIT 100) AS s
   WHERE j.id = s.id
  RETURNING j.id
)
SELECT coalesce(array_agg(id), '{}') AS claimed_ids FROM claimed
\gset
UPDATE bench_raw.job_queue
   SET status = 'completed', locked_by = NULL, locked_at = NULL, updated_at = now()
 WHERE id = ANY (CAST(:claimed_ids AS bigint[]));
