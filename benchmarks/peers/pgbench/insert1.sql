-- insert 1 row per (autocommit) transaction. jobs/s = tps.
\set n random(1, 1000000000)
INSERT INTO bench_raw.job_queue (job_type, payload, status, attempts, run_at, created_at, updated_at)
VALUES ('bench', jsonb_build_object('n', CAST(:n AS bigint), 's', 'hello world'), 'pending', 0, now(), now(), now());
