"""The BullMQ producer and worker from Python."""

import itertools
import os
import signal
import subprocess
import threading
import time

import pytest

import jobqueue

from conftest import assert_freed_with_a_handler_referring_back


@pytest.fixture
def bull(redis_url):
    name = f"py_bull_{os.getpid()}"
    with jobqueue.BullQueue(redis_url, name, pool_size=2) as q:
        yield q
    subprocess.run(
        f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:{name}:*' | "
        f"xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
        shell=True, check=True)


def test_add_and_counts(bull):
    first = bull.add("email", {"to": "a@example.com"})
    assert first == "1"
    bull.add("email", {"to": "b@example.com"}, {"delay": 60000, "attempts": 3,
                                                  "backoff": {"type": "exponential", "delay": 1000}})
    bull.add("email", None, {"priority": 2})
    assert bull.add("report", {}, {"jobId": "report-7"}) == "report-7"
    assert bull.add("report", {"again": True}, {"jobId": "report-7"}) == "report-7"
    counts = bull.counts()
    assert counts["waiting"] == 2
    assert counts["delayed"] == 1
    assert counts["prioritized"] == 1
    assert counts["active"] == 0 and counts["waiting-children"] == 0
    job = bull.get_job(first)
    assert job["name"] == "email" and job["data"] == {"to": "a@example.com"}
    assert bull.get_job("2")["opts"]["attempts"] == 3
    assert bull.get_job("report-7")["data"] == {}
    assert bull.name.startswith("py_bull_")


def test_administration(bull):
    bull.add("email", {"n": 1})
    bull.add("email", {"n": 2}, {"delay": 60000})
    bull.add("email", {"n": 3}, {"priority": 4})
    bull.add("report", {}, {"jobId": "report-7"})
    assert bull.promote("2") == 1
    with pytest.raises(jobqueue.FailedPreconditionError, match="delayed"):
        bull.promote("2")
    assert bull.promote() == 0
    bull.remove("report-7")
    with pytest.raises(jobqueue.NotFoundError):
        bull.remove("report-7")
    assert bull.clean("wait", grace=3600) == []
    with pytest.raises(jobqueue.InvalidArgumentError):
        bull.clean("bogus")
    assert bull.retry_jobs() == 0
    counts = bull.counts()
    assert counts["waiting"] == 2 and counts["prioritized"] == 1 and counts["delayed"] == 0
    assert bull.drain(delayed=True) == 3
    assert sum(bull.counts().values()) == 0


def test_bad_input(bull, redis_url):
    with pytest.raises(jobqueue.InvalidArgumentError, match="bogus"):
        bull.add("email", {}, {"bogus": 1})
    with pytest.raises(jobqueue.InvalidArgumentError, match="queue name"):
        jobqueue.BullQueue(redis_url, "has:colon")
    with pytest.raises(jobqueue.NotFoundError):
        bull.get_job("does-not-exist")
    with pytest.raises(TypeError):
        bull.add("email", {"x": object()})
    assert sum(bull.counts().values()) == 0


def test_closed(redis_url):
    q = jobqueue.BullQueue(redis_url, f"py_closed_{os.getpid()}")
    q.close()
    assert q.closed
    with pytest.raises(jobqueue.FailedPreconditionError, match="closed"):
        q.add("x")


# The BullMQ worker.

_names = itertools.count()


@pytest.fixture
def bull_name(redis_url):
    """A fresh queue name; its keys are deleted afterwards."""
    name = f"py_bullw_{os.getpid()}_{next(_names)}"
    yield name
    subprocess.run(
        f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:{name}:*' | "
        f"xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
        shell=True, check=True)


def test_a_bull_worker_its_own_handler_refers_to_is_collected(redis_url, bull_name):
    # As for Worker: before, the worker and its Redis connections lived on for good.
    assert_freed_with_a_handler_referring_back(
        lambda handler: make_bull_worker(redis_url, bull_name, handler))


def make_bull_worker(redis_url, queue_name, handler=None, **options):
    defaults = dict(exit_when_idle=0.5, drain_delay=0.2, shutdown_timeout=5.0,
                    lock_duration=5.0, stalled_interval=5.0)
    defaults.update(options)
    return jobqueue.BullWorker(redis_url, queue_name, handler, **defaults)


def test_worker_runs_handlers_by_job_name(redis_url, bull_name):
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        ids = [q.add("welcome", {"to": f"u{i}@example.com"}) for i in range(5)]
        report = q.add("report", {"month": 11})
        worker = make_bull_worker(redis_url, bull_name, concurrency=2, name="py-test")
        seen = []

        @worker.handler("welcome")
        def welcome(job):
            assert isinstance(job, jobqueue.BullJob)
            assert job.token and not job.stopping and job.attempts_made == 0
            seen.append(job.id)
            return {"sent": job.data["to"]}

        @worker.handler("report")
        def monthly(job):
            return [job.name, job.data["month"]]

        assert welcome.__name__ == "welcome"  # the decorator hands the function back
        assert worker.job_names == ["report", "welcome"] and worker.queue == bull_name
        stats = worker.run()
        assert stats.completed == 6 and stats.failed == 0 and stats.retried == 0
        assert 0 <= stats.prefetched <= 6
        assert sorted(seen) == sorted(ids)
        job = q.get_job(ids[3])
        assert job["return_value"] == {"sent": "u3@example.com"}
        assert job["finished_on"] is not None and job["processed_on"] is not None
        assert q.get_job(report)["return_value"] == ["report", 11]
        assert q.counts()["completed"] == 6


def test_one_handler_for_every_name_and_none_result(redis_url, bull_name):
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        a = q.add("a", {"n": 1})
        b = q.add("b", {"n": 2})
        names = []
        worker = make_bull_worker(redis_url, bull_name, lambda job: names.append(job.name))
        assert worker.run().completed == 2
        assert sorted(names) == ["a", "b"]
        assert q.get_job(a)["return_value"] is None and q.get_job(b)["return_value"] is None


def test_failures_retries_and_unrecoverable(redis_url, bull_name):
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        flaky = q.add("flaky", {}, {"attempts": 3, "backoff": {"type": "fixed", "delay": 10}})
        broken = q.add("broken", {}, {"attempts": 5})
        fatal = q.add("fatal", {}, {"attempts": 5})
        odd = q.add("odd", {}, {"attempts": 1})
        unknown = q.add("nobody-handles-this", {}, {"attempts": 1})
        worker = make_bull_worker(redis_url, bull_name, exit_when_idle=1.0)
        attempts = []

        @worker.handler("flaky")
        def flaky_handler(job):
            attempts.append(job.attempts_made)
            if job.attempts_made < 2:
                raise RuntimeError(f"attempt {job.attempts_made + 1} failed")
            return "third time lucky"

        @worker.handler("broken")
        def broken_handler(job):
            raise ValueError("corrupt CSV header") if job.attempts_made == 0 else KeyError()

        @worker.handler("fatal")
        def fatal_handler(job):
            raise jobqueue.UnrecoverableError("bad input, do not retry")

        worker.register("odd", lambda job: {"when": object()})
        stats = worker.run()
        assert attempts == [0, 1, 2]
        assert q.get_job(flaky)["return_value"] == "third time lucky"
        fatal_job = q.get_job(fatal)
        assert fatal_job["failed_reason"] == "bad input, do not retry"
        assert fatal_job["attempts_made"] == 1  # 5 allowed, none retried
        assert "JSON serializable" in q.get_job(odd)["failed_reason"]
        assert "no handler" in q.get_job(unknown)["failed_reason"]
        broken_job = q.get_job(broken)
        # An exception with no text is named by its type; 5 attempts all failed.
        assert broken_job["attempts_made"] == 5 and broken_job["failed_reason"] == "KeyError"
        # Each attempt's Python traceback is stored, as Node stores err.stack.
        first = broken_job["stacktrace"][0]
        assert first.startswith("Traceback (most recent call last):"), first
        assert "broken_handler" in first and first.endswith("ValueError: corrupt CSV header")
        assert broken_job["stacktrace"][-1].endswith("KeyError")
        assert stats.completed == 1 and stats.failed == 4 and stats.retried == 2 + 4
        assert q.counts()["failed"] == 4 and q.counts()["completed"] == 1


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


def test_handler_errors_that_are_hard_to_describe_still_name_their_type(redis_url, bull_name):
    # int(job) raises TypeError from C (no traceback); str() of the other exception raises.
    # Either way the job records the real error, and a job kept by the handler is safe to
    # read once the handler returned.
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        from_c = q.add("builtin", {}, {"attempts": 1})
        stats = make_bull_worker(redis_url, bull_name, int).run()
        assert stats.failed == 1
        job = q.get_job(from_c)
        assert job["failed_reason"].startswith("int() argument"), job["failed_reason"]
        assert job["stacktrace"][0].startswith("TypeError: int() argument")

        unprintable = q.add("unprintable", {}, {"attempts": 1})
        saved = []

        def raise_unprintable(job):
            saved.append(job)
            raise UnprintableError()

        stats = make_bull_worker(redis_url, bull_name, raise_unprintable).run()
        assert stats.failed == 1
        job = q.get_job(unprintable)
        assert job["failed_reason"] == "UnprintableError"
        assert job["stacktrace"][0].endswith("UnprintableError: <exception str() failed>")
        assert saved[0].stopping and saved[0].id == unprintable


def test_fast_jobs_are_claimed_ahead_unless_prefetch_is_off(redis_url, bull_name):
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        for prefetch in (64, 0):
            for i in range(300):
                q.add("n", {"i": i})
            seen = []
            worker = make_bull_worker(redis_url, bull_name, prefetch=prefetch)
            worker.register(None, lambda job: seen.append(job.data["i"]))
            stats = worker.run()
            assert sorted(seen) == list(range(300)), prefetch
            assert stats.completed == 300 and stats.released == 0
            assert (stats.prefetched > 0) == (prefetch > 0), stats.prefetched
            assert f"prefetched={stats.prefetched}, steps={stats.steps}" in repr(stats)


def test_idle_exit_waits_its_full_time_on_the_monotonic_clock(redis_url, bull_name):
    worker = make_bull_worker(redis_url, bull_name, lambda job: None, exit_when_idle=1.0)
    began = time.monotonic()
    worker.run()
    # Timed on CLOCK_MONOTONIC, as time.monotonic() is: the wall clock can run ahead of it.
    assert time.monotonic() - began >= 1.0


def test_worker_bad_input(redis_url, bull_name):
    worker = make_bull_worker(redis_url, bull_name)
    worker.register("t", lambda job: None)
    with pytest.raises(jobqueue.AlreadyExistsError, match="already registered"):
        worker.register("t", lambda job: None)
    with pytest.raises(jobqueue.InvalidArgumentError, match="not callable"):
        worker.register("u", 42)
    with pytest.raises(jobqueue.InvalidArgumentError, match="empty"):
        worker.register("", lambda job: None)
    worker.handler()(lambda job: None)
    with pytest.raises(jobqueue.AlreadyExistsError, match="every job"):
        worker.handler()(lambda job: None)
    with pytest.raises(jobqueue.InvalidArgumentError, match="concurrency"):
        make_bull_worker(redis_url, bull_name, concurrency=0)
    with pytest.raises(jobqueue.InvalidArgumentError, match="seconds"):
        make_bull_worker(redis_url, bull_name, lock_duration="long")
    with pytest.raises(jobqueue.InvalidArgumentError, match="prefetch"):
        make_bull_worker(redis_url, bull_name, prefetch=-1)
    with pytest.raises(jobqueue.InvalidArgumentError, match="prefetch window"):
        make_bull_worker(redis_url, bull_name, prefetch_window=0)
    with pytest.raises(jobqueue.InvalidArgumentError, match="job name must be a str"):
        @worker.handler  # without the call
        def forgot_the_parentheses(job):
            return None
    with pytest.raises(jobqueue.InvalidArgumentError, match="limiter"):
        make_bull_worker(redis_url, bull_name, limiter={"max": 1})
    with pytest.raises(jobqueue.InvalidArgumentError, match="limiter"):
        make_bull_worker(redis_url, bull_name, limiter={"max": "1", "duration": 1000})
    with pytest.raises(jobqueue.InvalidArgumentError, match="redis"):
        jobqueue.BullWorker(42, bull_name)
    with pytest.raises(jobqueue.JobQueueError):
        jobqueue.BullWorker("redis://127.0.0.1:1/0", bull_name, connect_timeout=1.0)
    with pytest.raises(jobqueue.FailedPreconditionError, match="no handlers"):
        make_bull_worker(redis_url, bull_name).run()
    worker.run()
    with pytest.raises(jobqueue.FailedPreconditionError, match="runs only once"):
        worker.run()
    with pytest.raises(jobqueue.FailedPreconditionError, match="before run"):
        worker.register("v", lambda job: None)


def test_stop_lets_handlers_finish_and_releases_the_gil(redis_url, bull_name, ticker):
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        ids = [q.add("slow", {"i": i}) for i in range(2)]
        worker = make_bull_worker(redis_url, bull_name, concurrency=2, exit_when_idle=None)
        started = threading.Barrier(3)
        finished = []

        @worker.handler("slow")
        def slow(job):
            started.wait(10)
            while not job.stopping:
                time.sleep(0.01)
            finished.append(job.id)
            return {"stopped": True}

        def stopper():
            try:
                started.wait(10)
            finally:  # a broken barrier must fail the test, not leave run() waiting forever
                worker.stop()

        thread = threading.Thread(target=stopper)
        thread.start()
        with ticker() as tick:
            stats = worker.run()
        thread.join()
        assert sorted(finished) == sorted(ids)
        # Handlers that finish within shutdown_timeout still complete their jobs.
        assert stats.completed == 2 and stats.released == 0
        assert q.get_job(ids[0])["return_value"] == {"stopped": True}
        assert tick.ticks > 0  # the ticker thread ran while run() waited


def test_sigint_stops_gracefully_and_restores_the_handler(redis_url, bull_name):
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        q.add("t", {})

        def interrupt(job):
            os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread, in run()
            return "ok"

        worker = make_bull_worker(redis_url, bull_name, interrupt, exit_when_idle=None)
        previous = signal.getsignal(signal.SIGINT)
        stats = worker.run()  # would raise KeyboardInterrupt without our handler
        assert stats.completed == 1
        assert signal.getsignal(signal.SIGINT) is previous
        assert q.counts()["active"] == 0 and q.counts()["completed"] == 1


def test_job_fields_and_connection_kinds(redis_url, bull_name):
    tls_url, tls_ca, socket = (os.environ.get(n) for n in ("REDIS_TLS_URL", "REDIS_TLS_CA",
                                                           "REDIS_SOCKET"))
    assert tls_url and tls_ca and socket, "scripts/services env exports the TLS URL and socket"
    password = redis_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    config = jobqueue.Config.load("worker", load_env_files=False,
                                  environ={"DATABASE_URL": "postgresql://x@127.0.0.1/x",
                                           "REDIS_URL": redis_url})
    connections = {
        "config": (config, {}),
        "secret": (jobqueue.Secret(redis_url), {}),
        "tls": (tls_url, {"tls_ca_file": tls_ca}),
        "unix": (f"unix://default:{password}@{socket}", {}),
    }
    seen = {}

    def handle(job):
        seen[job.name] = job
        assert job.data == {"kind": job.name}
        assert job.data_json == f'{{"kind":"{job.name}"}}'
        assert job.opts["attempts"] == 2 and job.priority == 3 and job.delay == 0
        assert job.timestamp > 0 and job.processed_on >= job.timestamp
        return job.name

    with jobqueue.BullQueue(redis_url, bull_name) as q:
        # One job at a time, each processed by a worker connected another way.
        for kind, (redis, extra) in connections.items():
            q.add(kind, {"kind": kind}, {"priority": 3, "attempts": 2, "jobId": f"job-{kind}"})
            stats = make_bull_worker(redis, bull_name, handle, **extra).run()
            assert stats.completed == 1 and stats.failed == 0, kind
            assert q.get_job(f"job-{kind}")["return_value"] == kind
        assert sorted(seen) == sorted(connections)
        assert all(job.stopping for job in seen.values())  # read after the handler returned
        assert repr(seen["tls"]) == "BullJob(id='job-tls', name='tls')"
        with pytest.raises(jobqueue.FailedPreconditionError, match="REDIS_URL"):
            jobqueue.BullWorker(jobqueue.Config.load(
                "worker", load_env_files=False,
                environ={"DATABASE_URL": "postgresql://x@127.0.0.1/x"}), bull_name)


def test_locks_are_renewed_while_a_long_handler_runs(redis_url, bull_name):
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        long_job = q.add("long", {})
        # A 1 s lock and a 0.5 s stalled check: without renewal the job would stall.
        worker = make_bull_worker(redis_url, bull_name, lock_duration=1.0,
                                  stalled_interval=0.5, exit_when_idle=0.5)

        @worker.handler("long")
        def long_running(job):
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:  # busy, holding the GIL most of the time
                sum(range(1000))
            return "finished"

        stats = worker.run()
        assert stats.completed == 1 and stats.lost == 0 and stats.stalled_recovered == 0
        job = q.get_job(long_job)
        assert job["return_value"] == "finished" and job["attempts_made"] == 1
