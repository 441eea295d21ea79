"""Worker with decorator-registered handlers, against the real Postgres."""

import os
import signal
import subprocess
import textwrap
import threading
import time

import pytest

import jobqueue

from conftest import assert_freed_with_a_handler_referring_back


def make_worker(queue, **options):
    defaults = dict(name="Py Test", concurrency=2, poll_interval=0.1, exit_when_idle=0.5,
                    heartbeat_interval=1.0, shutdown_timeout=5.0, log_startup=False)
    defaults.update(options)
    return jobqueue.Worker(queue, **defaults)


def test_a_worker_its_own_handler_refers_to_is_collected(queue):
    # Before, the cycle collector could not see the handler held in C++: the worker and its
    # queue's pool lived on for good.
    def make(handler):
        worker = make_worker(queue)
        worker.register("t", handler)
        return worker

    assert_freed_with_a_handler_referring_back(make)


def test_decorated_handlers_process_jobs(queue):
    ids = [r.id for r in queue.enqueue_many([("ingest_csv", {"file": f"f{i}.csv"}) for i in range(10)])]
    broken = queue.enqueue("ingest_csv", {"file": "broken.csv"}, max_attempts=1).id
    noresult = queue.enqueue("notify", {"to": "ops"}).id
    worker = make_worker(queue)
    seen = []

    @worker.handler("ingest_csv")
    def ingest(job):
        assert isinstance(job, jobqueue.JobContext)
        if job.payload["file"] == "broken.csv":
            raise ValueError("corrupt CSV header")
        seen.append((job.id, job.attempt, job.job_type, job.queue, job.worker_id))
        return {"file": job.payload["file"], "rows": len(job.payload["file"])}

    @worker.handler("notify")
    def notify(job):
        assert not job.stopping
        return None

    assert ingest.__name__ == "ingest"  # the decorator hands the function back
    assert sorted(worker.job_types) == ["ingest_csv", "notify"]
    stats = worker.run()
    assert stats.completed == 11 and stats.failed == 1 and stats.lost == 0
    assert sorted(s[0] for s in seen) == ids
    assert {s[1:4] for s in seen} == {(1, "ingest_csv", "default")}
    assert {s[4] for s in seen} == {worker.worker_id}
    assert queue.get(ids[4]).result == {"file": "f4.csv", "rows": 6}
    failed = queue.get(broken)
    assert failed.status == "failed" and failed.last_error == "ValueError: corrupt CSV header"
    assert queue.get(noresult).status == "completed" and queue.get(noresult).result is None
    assert worker.stats.completed == 11


def test_failures_retry_then_succeed(database_url, schema):
    with jobqueue.PgQueue(database_url, schema=schema, retry_base_delay=0.05, retry_jitter=0) as q:
        q.migrate()
        added = q.enqueue("flaky", {"n": 1}, max_attempts=3)
        worker = make_worker(q, exit_when_idle=1.0)
        attempts = []

        @worker.handler("flaky")
        def flaky(job):
            attempts.append(job.attempt)
            if job.attempt < 3:
                raise RuntimeError(f"attempt {job.attempt} failed")
            return "third time lucky"

        stats = worker.run()
        assert attempts == [1, 2, 3]
        assert stats.failed == 2 and stats.completed == 1
        job = q.get(added.id)
        assert job.status == "completed" and job.result == "third time lucky"


def test_unserialisable_result_fails_the_job(queue):
    added = queue.enqueue("t", max_attempts=1)
    worker = make_worker(queue)
    worker.register("t", lambda job: {"when": object()})
    worker.run()
    job = queue.get(added.id)
    assert job.status == "failed"
    assert job.last_error.startswith("TypeError: ") and "JSON serializable" in job.last_error


def test_result_that_cannot_be_stored_says_why(queue):
    # A lone surrogate (os.fsdecode of a non-UTF-8 file name) cannot become JSON text: the
    # job's error says so. Before, it read "handler: jobqueue status error".
    added = queue.enqueue("t", max_attempts=1)
    worker = make_worker(queue)
    worker.register("t", lambda job: {"file": "bad-\udcff-name"})
    worker.run()
    job = queue.get(added.id)
    assert job.status == "failed"
    assert job.last_error.startswith("handler result: ") and "status error" not in job.last_error


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


def test_handler_errors_that_are_hard_to_describe_still_name_their_type(queue):
    # int(job) raises TypeError from C (no Python frame); str() of the other exception raises.
    # Either way the job records the real error, and a context kept by the handler is safe to
    # read once the handler returned.
    from_c = queue.enqueue("builtin", max_attempts=1).id
    unprintable = queue.enqueue("unprintable", max_attempts=1).id
    worker = make_worker(queue)
    worker.register("builtin", int)
    saved = []

    @worker.handler("unprintable")
    def raise_unprintable(job):
        saved.append(job)
        raise UnprintableError()

    stats = worker.run()
    assert stats.failed == 2 and stats.lost == 0
    job = queue.get(from_c)
    assert job.status == "failed" and job.last_error.startswith("TypeError: int() argument")
    job = queue.get(unprintable)
    assert job.status == "failed"
    assert job.last_error == "UnprintableError: <exception str() failed>"
    assert saved[0].stopping and saved[0].id == unprintable


def test_handler_raising_lease_lost_writes_nothing(queue):
    added = queue.enqueue("t")
    worker = make_worker(queue)

    @worker.handler("t")
    def lost(job):
        raise jobqueue.LeaseLostError("somebody else has it")

    stats = worker.run()
    assert stats.lost == 1 and stats.failed == 0 and stats.completed == 0
    job = queue.get(added.id)
    assert job.status == "processing" and job.last_error is None


def test_handler_raising_other_aborted_error_fails_the_attempt(queue):
    # Only LeaseLostError means the lease is gone; an ABORTED error such as a deadlock is a
    # failure like any other (before, the job was left processing until the reaper).
    added = queue.enqueue("t", max_attempts=1)
    worker = make_worker(queue)

    @worker.handler("t")
    def deadlocked(job):
        raise jobqueue.AbortedError("deadlock detected")

    stats = worker.run()
    assert stats.failed == 1 and stats.lost == 0
    job = queue.get(added.id)
    assert job.status == "failed" and "deadlock detected" in job.last_error


def test_short_job_mode_completes_each_job_once(queue):
    ids = [r.id for r in queue.enqueue_many([("short", {"n": i}) for i in range(30)])]
    worker = make_worker(queue, concurrency=4, batch_size=10, transaction_budget=1.0)

    @worker.handler("short")
    def short(job):
        return {"twice": job.payload["n"] * 2}

    stats = worker.run()
    assert stats.completed == 30 and stats.failed == 0 and stats.lost == 0
    rows = [queue.get(i) for i in ids]
    assert {(r.status, r.attempts, r.locked_by) for r in rows} == {
        ("completed", 1, worker.worker_id)}
    assert [r.result["twice"] for r in rows] == [2 * i for i in range(30)]
    with pytest.raises(jobqueue.InvalidArgumentError, match="transaction budget"):
        make_worker(queue, transaction_budget=11)


def test_register_errors(queue):
    worker = make_worker(queue)
    worker.register("t", lambda job: None)
    with pytest.raises(jobqueue.AlreadyExistsError, match="already registered"):
        worker.register("t", lambda job: None)
    with pytest.raises(jobqueue.InvalidArgumentError, match="job type"):
        worker.handler("bad type")(lambda job: None)
    with pytest.raises(jobqueue.InvalidArgumentError, match="not callable"):
        worker.register("u", "not a function")
    with pytest.raises(jobqueue.InvalidArgumentError, match="concurrency"):
        make_worker(queue, concurrency=0)
    empty = make_worker(queue)
    with pytest.raises(jobqueue.FailedPreconditionError, match="no job handlers"):
        empty.run()
    worker.run()
    with pytest.raises(jobqueue.FailedPreconditionError, match="runs only once"):
        worker.run()


def test_stop_from_another_thread_lets_handlers_finish(queue):
    queue.enqueue_many([("slow", {"i": i}) for i in range(2)])
    worker = make_worker(queue, exit_when_idle=None)
    started = threading.Event()
    finished = []

    @worker.handler("slow")
    def slow(job):
        started.set()
        while not job.stopping:
            time.sleep(0.01)
        finished.append(job.id)
        return {"stopped": True}

    threading.Thread(target=lambda: (started.wait(10), worker.stop())).start()
    began = time.monotonic()
    stats = worker.run()
    assert time.monotonic() - began < 10
    assert started.is_set() and len(finished) == 2
    # Handlers that finish during the shutdown grace period still complete their jobs.
    assert stats.completed == 2
    assert queue.count(status="completed") == 2


def test_sigint_stops_gracefully_and_restores_the_handler(queue):
    queue.enqueue("t")
    worker = make_worker(queue, exit_when_idle=None)
    done = []
    worker.register("t", lambda job: done.append(job.id))
    previous = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    stats = worker.run()  # would raise KeyboardInterrupt without our handler
    timer.join()
    assert stats.completed == 1 and len(done) == 1
    assert signal.getsignal(signal.SIGINT) is previous


def test_a_second_sigint_hands_the_running_job_back_at_once(queue):
    queue.enqueue("t")
    worker = make_worker(queue, exit_when_idle=None, shutdown_timeout=60)
    started, finish = threading.Event(), threading.Event()

    def stubborn(job):
        started.set()
        finish.wait(60)
        return "late"

    worker.register("t", stubborn)

    processing_after_first = []

    def interrupt_twice():
        started.wait(10)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        processing_after_first.append(queue.count(status="processing"))
        time.sleep(0.9)  # within a second it would count as the same Ctrl-C, forwarded
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 10
        while queue.count(status="pending") != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        finish.set()

    helper = threading.Thread(target=interrupt_twice)
    helper.start()
    stats = worker.run()
    helper.join()
    assert processing_after_first == [1]  # the first SIGINT waits for the handler
    assert stats.released == 1
    assert queue.count(status="pending") == 1 and queue.count(status="completed") == 0


def test_keyboard_interrupt_without_signal_handling_still_stops_gracefully(queue):
    queue.enqueue("t")
    worker = make_worker(queue, exit_when_idle=None)
    worker.register("t", lambda job: "ok")
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        worker.run(handle_signals=False)
    timer.join()
    assert worker.stats.completed == 1
    assert queue.count(status="completed") == 1


def test_sigterm_in_a_service_process(queue, python, schema):
    script = textwrap.dedent(f"""
        import os, sys, jobqueue
        jobqueue.configure_logging(level="info")
        q = jobqueue.PgQueue(os.environ["DATABASE_URL"], schema={schema!r})
        w = jobqueue.Worker(q, name="Signal Test", poll_interval=0.1, environment="dev")

        @w.handler("t")
        def handle(job):
            print("handled", job.id, flush=True)

        stats = w.run()
        print("stopped:", stats.completed, flush=True)
    """)
    queue.enqueue("t")
    process = subprocess.Popen([python, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    line = process.stdout.readline()
    assert line.startswith("handled")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "stopped: 1" in out
    # The seed's start-up lines.
    assert "Starting Signal Test Worker (env=dev)" in err
    assert "Poll interval: 0.1s" in err
    assert "Job types: t" in err


def test_worker_options_from_config(queue, database_url):
    config = jobqueue.Config.load("worker", load_env_files=False,
                                  environ={"DATABASE_URL": database_url, "ENVIRONMENT": "staging",
                                           "WORKER_POLL_INTERVAL": "0.2"})
    worker = jobqueue.Worker(queue, config=config, exit_when_idle=0.3, log_startup=False)
    worker.register("t", lambda job: job.payload)
    queue.enqueue("t", {"x": 1})
    assert worker.run().completed == 1
    with pytest.raises(jobqueue.InvalidArgumentError, match="poll interval"):
        jobqueue.Worker(queue, poll_interval=0)
