"""Errors: one JobQueueError subclass per status code, with the code and a message with
context; bad input never crashes."""

import math

import pytest

import jobqueue

SUBCLASSES = {
    "CancelledError": "CANCELLED",
    "InvalidArgumentError": "INVALID_ARGUMENT",
    "DeadlineExceededError": "DEADLINE_EXCEEDED",
    "NotFoundError": "NOT_FOUND",
    "AlreadyExistsError": "ALREADY_EXISTS",
    "PermissionDeniedError": "PERMISSION_DENIED",
    "ResourceExhaustedError": "RESOURCE_EXHAUSTED",
    "FailedPreconditionError": "FAILED_PRECONDITION",
    "AbortedError": "ABORTED",
    "LeaseLostError": "ABORTED",
    "OutOfRangeError": "OUT_OF_RANGE",
    "UnimplementedError": "UNIMPLEMENTED",
    "InternalError": "INTERNAL",
    "UnavailableError": "UNAVAILABLE",
    "DataLossError": "DATA_LOSS",
    "UnauthenticatedError": "UNAUTHENTICATED",
}


def test_hierarchy():
    assert issubclass(jobqueue.JobQueueError, Exception)
    for name in SUBCLASSES:
        cls = getattr(jobqueue, name)
        assert issubclass(cls, jobqueue.JobQueueError), name
        assert cls.__module__ == "jobqueue"
    # A lost lease is one kind of ABORTED; other ABORTED errors (a deadlock) are not.
    assert issubclass(jobqueue.LeaseLostError, jobqueue.AbortedError)
    assert jobqueue.AbortedError is not jobqueue.LeaseLostError
    # Where a builtin fits, the class is one too.
    assert issubclass(jobqueue.InvalidArgumentError, ValueError)
    assert issubclass(jobqueue.NotFoundError, LookupError)
    assert issubclass(jobqueue.UnavailableError, ConnectionError)
    assert issubclass(jobqueue.DeadlineExceededError, TimeoutError)


def test_invalid_argument_with_context(queue):
    with pytest.raises(jobqueue.InvalidArgumentError) as raised:
        queue.enqueue("no spaces allowed")
    assert raised.value.code == "INVALID_ARGUMENT"
    assert "job type" in str(raised.value) and "no spaces allowed" in str(raised.value)
    with pytest.raises(ValueError, match="priority"):
        queue.enqueue("t", priority=100000)
    with pytest.raises(jobqueue.InvalidArgumentError, match="attempts"):
        queue.enqueue("t", max_attempts=0)
    with pytest.raises(jobqueue.InvalidArgumentError, match="delay"):
        queue.enqueue("t", delay="soon")
    with pytest.raises(jobqueue.InvalidArgumentError, match="finite"):
        queue.enqueue("t", delay=math.inf)
    with pytest.raises(jobqueue.InvalidArgumentError, match="run_at"):
        queue.enqueue("t", run_at="tomorrow")
    with pytest.raises(jobqueue.InvalidArgumentError, match="limit"):
        queue.claim("t", limit=0)
    with pytest.raises(jobqueue.InvalidArgumentError, match="enqueue_many"):
        queue.enqueue_many([("t", {}, "extra")])
    assert queue.count() == 0


def test_payloads_must_be_json(queue):
    with pytest.raises(TypeError, match="not JSON serializable"):
        queue.enqueue("t", {"when": object()})
    with pytest.raises(ValueError):
        queue.enqueue("t", {"x": math.nan})
    queue.enqueue("t")
    lease = queue.claim("t")[0]
    with pytest.raises(TypeError):
        lease.complete({1, 2})
    assert not lease.finished
    lease.complete([1, 2])


def test_not_found(queue):
    with pytest.raises(jobqueue.NotFoundError, match="123456789") as raised:
        queue.get(123456789)
    assert raised.value.code == "NOT_FOUND"


def test_not_migrated(database_url, schema):
    with jobqueue.PgQueue(database_url, schema=schema) as q:
        with pytest.raises(jobqueue.FailedPreconditionError, match="migrate"):
            q.enqueue("t")


def test_unavailable_server_hides_the_password():
    with pytest.raises(jobqueue.UnavailableError) as raised:
        jobqueue.PgQueue("postgresql://app:hunter2@127.0.0.1:1/app", connect_timeout=2)
    assert "connecting to" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert isinstance(raised.value, ConnectionError)


def test_bad_options():
    with pytest.raises(jobqueue.InvalidArgumentError, match="schema"):
        jobqueue.PgQueue("postgresql://127.0.0.1:1/x", schema="Not-A-Schema")
    with pytest.raises(jobqueue.InvalidArgumentError, match="pool"):
        jobqueue.PgQueue("postgresql://127.0.0.1:1/x", pool_size=0)


def test_bad_logging_level():
    with pytest.raises(jobqueue.InvalidArgumentError, match="log level"):
        jobqueue.configure_logging(level="loud")
    jobqueue.configure_logging(level="warn", format="text")
