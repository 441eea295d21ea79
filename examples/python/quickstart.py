"""Quickstart: enqueue a job, claim it, and complete it through a lease context manager.

    DATABASE_URL=postgresql://... python quickstart.py [--schema ops]
"""

import argparse
import os

import jobqueue


def main(argv=None):
    parser = argparse.ArgumentParser(prog="quickstart")
    parser.add_argument("--schema", default=os.environ.get("JOBQUEUE_SCHEMA", "ops"))
    args = parser.parse_args(argv)

    with jobqueue.PgQueue(os.environ["DATABASE_URL"], schema=args.schema) as queue:
        queue.migrate()  # creates <schema>.job_queue; safe to run every time
        job_id = queue.enqueue("send_report", {"month": "2026-11"}, max_attempts=3).id

        for lease in queue.claim("send_report", limit=10):
            with lease:  # completes on success; an exception fails the attempt instead
                lease.result = {"sent_to": "ops@example.com", "month": lease.payload["month"]}

        job = queue.get(job_id)
        print(f"job {job.id}: {job.status}, result {job.result}")
        return job


if __name__ == "__main__":
    main()
