"""A BullMQ worker in Python: processes jobs that Node's Queue.add (or any BullMQ producer)
adds to a queue, beside Node workers on the same queue.

    python bull_worker.py QUEUE [--concurrency N] [--exit-when-idle SECONDS]

REDIS_URL names the Redis server (redis://, rediss:// or unix://). Jobs
named "thumbnail" get {"width": w, "height": h} scaled to fit 128x128; "welcome" jobs
{"to": address} return a greeting. A thumbnail of a non-positive size fails for good
(UnrecoverableError); other errors are retried per the job's attempts/backoff.
"""

import argparse
import os
import sys

import jobqueue


def make_worker(redis, queue, **options):
    worker = jobqueue.BullWorker(redis, queue, name="py-example", **options)

    @worker.handler("thumbnail")
    def thumbnail(job):
        width, height = job.data["width"], job.data["height"]
        if width <= 0 or height <= 0:
            raise jobqueue.UnrecoverableError(f"bad size {width}x{height}")
        scale = min(128 / width, 128 / height, 1.0)
        return {"width": round(width * scale), "height": round(height * scale)}

    @worker.handler("welcome")
    def welcome(job):
        return {"message": f"Welcome, {job.data['to']}!", "attempt": job.attempts_made + 1}

    return worker


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bull_worker")
    parser.add_argument("queue")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--exit-when-idle", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        print("bull_worker: set REDIS_URL", file=sys.stderr)
        return jobqueue.EXIT_CONFIG_ERROR
    jobqueue.configure_logging(level=os.environ.get("LOG_LEVEL", "info"))
    worker = make_worker(redis_url, args.queue, concurrency=args.concurrency,
                         exit_when_idle=args.exit_when_idle)
    print(f"Starting BullMQ worker on {args.queue} (jobs: {', '.join(worker.job_names)})",
          flush=True)
    stats = worker.run()  # until SIGTERM/SIGINT or idle
    print(f"Stopped: {stats.completed} completed, {stats.failed} failed, "
          f"{stats.retried} retried", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
