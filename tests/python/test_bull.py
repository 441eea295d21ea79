"""The BullMQ producer from Python."""

import os
import subprocess

import pytest

import jobqueue


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
