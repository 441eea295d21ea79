-- Fresh bench_raw.job_queue for the pgbench ceilings (see shared PEERS.md and
-- scripts/bench-peers-pg). Schema bench_raw only: ops is libjobqueue's own.
--
--   psql -X -v ON_ERROR_STOP=1 -v rows=2000000 -f benchmarks/peers/pgbench/setup.sql
--
-- rows = number of pending jobs to preload (0 for the insert measurements).
-- The partial index is built after the bulk load (faster, and what a fresh
-- queue that was filled and then indexed looks like). psql runs every
-- statement in autocommit mode, so VACUUM works here.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS bench_raw;
DROP TABLE IF EXISTS bench_raw.job_queue;

CREATE TABLE bench_raw.job_queue (
  id         bigserial PRIMARY KEY,
  job_type   text        NOT NULL,
  payload    jsonb       NOT NULL,
  status     text        NOT NULL DEFAULT 'pending',
  attempts   int         NOT NULL DEFAULT 0,
  run_at     timestamptz NOT NULL DEFAULT now(),
  locked_by  text,
  locked_at  timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO bench_raw.job_queue (job_type, payload, status, attempts, run_at, created_at, updated_at)
SELECT 'bench', jsonb_build_object('n', g, 's', 'hello world'), 'pending', 0,
       now() - interval '1 minute', now(), now()
FROM generate_series(1, :rows) AS g;

CREATE INDEX job_queue_pending_idx ON bench_raw.job_queue (job_type, run_at, id)
  WHERE status = 'pending';

VACUUM ANALYZE bench_raw.job_queue;
