-- insert 100 rows per statement (one autocommit transaction). rows/s = tps * 100.
INSERT INTO bench_raw.job_queue (job_type, payload, status, attempts, run_at, created_at, updated_at)
SELECT 'bench', jsonb_build_object('n', g, 's', 'hello world'), 'pending', 0, now(), now(), now()
FROM generate_series(1, 100) AS g;
