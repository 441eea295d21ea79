"""The GIL is released while the library waits: other Python threads keep running."""

import subprocess
import textwrap
import threading
import time

import jobqueue


def test_threads_run_while_a_worker_waits_for_jobs(queue, ticker):
    worker = jobqueue.Worker(queue, exit_when_idle=1.0, poll_interval=0.1, log_startup=False)
    worker.register("t", lambda job: job.payload)
    with ticker() as t:
        began = time.monotonic()
        worker.run()
        elapsed = time.monotonic() - began
        ticks = t.ticks
    # The worker times its idle second on CLOCK_MONOTONIC, as time.monotonic() does (with
    # absl::Now() it once exited after 0.997 s by this clock).
    assert elapsed >= 1.0
    # 5 ms ticks over >= 1 s: at least a third of them must have happened.
    assert ticks >= 60, ticks


def test_producer_thread_feeds_a_running_worker(queue):
    worker = jobqueue.Worker(queue, exit_when_idle=1.0, poll_interval=5.0, concurrency=2,
                             log_startup=False)
    handled = []
    worker.register("t", lambda job: handled.append(job.payload["i"]))

    def produce():
        for i in range(20):
            queue.enqueue("t", {"i": i})
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    stats = worker.run()
    producer.join()
    # LISTEN/NOTIFY wakes the worker long before the 5 s poll.
    assert sorted(handled) == list(range(20)) and stats.completed == 20


def test_handlers_run_in_parallel_when_they_release_the_gil(queue):
    queue.enqueue_many([("sleepy", {})] * 8)
    worker = jobqueue.Worker(queue, concurrency=8, exit_when_idle=0.3, poll_interval=0.1,
                             log_startup=False)
    # Each handler waits (GIL released) until all eight are in at once: serialised handlers
    # would break the barrier and fail their jobs. Before, an upper bound on the run's time
    # stood for this, which a loaded machine could miss.
    together = threading.Barrier(8, timeout=30)
    worker.register("sleepy", lambda job: together.wait())
    stats = worker.run()
    assert not together.broken
    assert stats.completed == 8 and stats.failed == 0


def test_threads_run_while_claim_waits_on_a_lock(queue, schema, sql, database_url, ticker):
    queue.enqueue("t")
    # Another session holds the table for 2 s; claim() must wait for it.
    holder = subprocess.Popen(
        ["psql", "-X", "-q", database_url, "-c",
         f'BEGIN; LOCK TABLE "{schema}".job_queue IN ACCESS EXCLUSIVE MODE; '
         "SELECT pg_sleep(2); COMMIT;"],
        stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                  "JOIN pg_namespace n ON n.oid = c.relnamespace "
                  f"WHERE n.nspname = '{schema}' AND c.relname = 'job_queue' "
                  "AND l.mode = 'AccessExclusiveLock' AND l.granted") != "1":
            assert time.monotonic() < deadline, "the lock was never taken"
            time.sleep(0.02)
        with ticker() as t:
            began = time.monotonic()
            leases = queue.claim("t")
            waited = time.monotonic() - began
            ticks = t.ticks
    finally:
        holder.wait(timeout=20)
    assert len(leases) == 1
    assert waited >= 0.5, waited
    assert ticks >= waited / 0.005 / 3, (ticks, waited)


def test_first_json_use_on_many_handler_threads(queue, schema, python):
    # A fresh process whose first JSON calls happen on 8 handler threads at once: lazily
    # importing json there once deadlocked (a static's guard held by one thread, the GIL by
    # another).
    script = textwrap.dedent(f"""
        import os, jobqueue
        q = jobqueue.PgQueue(os.environ["DATABASE_URL"], schema={schema!r})
        w = jobqueue.Worker(q, concurrency=8, batch_size=64, poll_interval=0.1,
                            exit_when_idle=0.5, log_startup=False)
        w.register("t", lambda job: {{"i": job.payload["i"]}})
        print(w.run().completed)
    """)
    for _ in range(3):
        ids = [r.id for r in queue.enqueue_many([("t", {"i": i}) for i in range(64)])]
        result = subprocess.run([python, "-c", script], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "64"
        assert queue.get(ids[-1]).result == {"i": 63}
