"""The ingest processor worker of seed 004, on libjobqueue's Python module.

    python -m ingest_processor [--schema ops] [--exit-when-idle SECONDS]

Reads its configuration as the "ingest" service (SUPABASE_MODE + SUPABASE_DB_URL_<MODE>, or
DATABASE_URL; ENVIRONMENT; WORKER_POLL_INTERVAL; .env files in the current directory), prints
the seed's start-up lines and processes `ingest_csv` jobs from <schema>.job_queue until
SIGTERM/SIGINT. A job's payload is {"file": name, "csv": text}; its result counts the rows,
names the columns, sums the numeric ones and lists malformed rows.
"""

import argparse
import csv
import io
import sys

import jobqueue

JOB_TYPES = ["ingest_csv"]


def ingest_csv(job):
    """Parses the CSV text of the payload into a summary dict."""
    payload = job.payload
    if not isinstance(payload, dict) or not isinstance(payload.get("csv"), str):
        # Retrying cannot fix the payload, but the queue's max_attempts bounds the retries.
        raise ValueError('payload must be {"file": ..., "csv": "<CSV text>"}')
    reader = csv.reader(io.StringIO(payload["csv"]))
    header = next(reader, None)
    if not header or not all(name.strip() for name in header):
        raise ValueError("missing or blank CSV header")
    columns = [name.strip() for name in header]
    sums = {name: 0.0 for name in columns}
    numeric = set(columns)
    rows, malformed = 0, []
    for line_number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(columns):
            malformed.append(line_number)
            continue
        rows += 1
        for name, value in zip(columns, row):
            if name not in numeric:
                continue
            try:
                sums[name] += float(value)
            except ValueError:
                numeric.discard(name)
    return {
        "file": payload.get("file", ""),
        "rows": rows,
        "columns": columns,
        "sums": {name: sums[name] for name in columns if name in numeric},
        "malformed_lines": malformed,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ingest_processor")
    parser.add_argument("--schema", default=None, help="default: JOBQUEUE_SCHEMA, else ops")
    parser.add_argument("--exit-when-idle", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)

    try:
        config = jobqueue.Config.load("ingest")
    except jobqueue.JobQueueError as error:
        print(f"ingest_processor: configuration error: {error}", file=sys.stderr)
        return jobqueue.exit_code_for(error)
    config.configure_logging()
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)

    # JOBQUEUE_SCHEMA may come from a .env file, like the rest of the configuration.
    schema = args.schema or config.get("JOBQUEUE_SCHEMA") or "ops"
    with jobqueue.PgQueue(config, schema=schema) as queue:
        queue.migrate()
        worker = jobqueue.Worker(queue, name="Ingest Processor", config=config,
                                 concurrency=args.concurrency, exit_when_idle=args.exit_when_idle,
                                 log_startup=False)
        for job_type in JOB_TYPES:
            worker.register(job_type, ingest_csv)
        # The seed's start-up lines, which its deploy checks look for.
        print(f"🚀 Starting Ingest Processor Worker (env={config.environment})")
        print(f"Poll interval: {config.poll_interval:.1f}s")
        print(f"Job types: {', '.join(JOB_TYPES)}", flush=True)
        stats = worker.run()
        print(f"Stopped: {stats.completed} completed, {stats.failed} failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
