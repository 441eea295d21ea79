"""Errors: one JobQueueError subclass per status code, with the code and a message with
context; bad input never crashes."""

import math
import os
import pathlib
import subprocess
import types

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


def test_text_that_is_not_unicode_is_invalid_argument(queue, redis_url):
    lone = "\ud800"
    for call in (lambda: queue.enqueue("t", {"s": lone}),
                 lambda: queue.enqueue(lone),
                 lambda: queue.enqueue_many([lone]),
                 lambda: queue.enqueue_many([(lone, {})])):
        with pytest.raises(jobqueue.InvalidArgumentError, match="not valid Unicode"):
            call()
    queue.enqueue("t")
    lease = queue.claim("t")[0]
    with pytest.raises(jobqueue.InvalidArgumentError, match="not valid Unicode"):
        lease.complete({"s": lone})
    assert not lease.finished
    lease.complete(None)
    assert queue.count() == 1  # only "t": nothing of the refused calls was written
    name = f"py_unicode_{os.getpid()}"
    try:
        with jobqueue.BullQueue(redis_url, name) as bull:
            with pytest.raises(jobqueue.InvalidArgumentError, match="not valid Unicode"):
                bull.add("x", {"s": lone})
            with pytest.raises(jobqueue.InvalidArgumentError, match="not valid Unicode"):
                bull.add("x", {}, {"jobId": lone})
            assert sum(bull.counts().values()) == 0
    finally:
        subprocess.run(
            f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:{name}:*' | "
            f"xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
            shell=True, check=True)


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


# Arguments of the wrong type or number. pybind11 would answer with "Invoked with: <the repr of
# every argument>", which prints a URL's password or an environ's values in clear text: the
# TypeError names the parameter (and the argument types) but never shows a value.

PASSWORD = "hunter2-SECRET"
PG_URL = f"postgresql://app:{PASSWORD}@127.0.0.1:1/app"
REDIS_URL = f"redis://:{PASSWORD}@127.0.0.1:1/0"
ENVIRON = {"DATABASE_URL": PG_URL, "REDIS_URL": REDIS_URL}


def raises_without_secret(call, parameter, error=TypeError):
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert PASSWORD not in message and "hunter2" not in message, message
    assert parameter in message, message
    return message


@pytest.mark.parametrize("call, parameter", [
    (lambda: jobqueue.PgQueue(PG_URL, pool_size="4"), "pool_size"),
    (lambda: jobqueue.PgQueue(PG_URL, retry_jitter="0.2"), "retry_jitter"),
    (lambda: jobqueue.BullQueue(REDIS_URL, "q", pool_size="4"), "pool_size"),
    (lambda: jobqueue.BullQueue(REDIS_URL, "q", tls_verify="yes"), "tls_verify"),
    (lambda: jobqueue.BullWorker(REDIS_URL, "q", lambda job: None, concurrency="4"),
     "concurrency"),
    (lambda: jobqueue.Config.load("worker", env_dir=pathlib.Path("."), environ=ENVIRON),
     "env_dir"),
    (lambda: jobqueue.Config.load("worker", required="DATABASE_URL", environ=ENVIRON),
     "required"),
    (lambda: jobqueue.Secret(123), "value"),
], ids=["pg", "pg-float", "bull", "bull-bool", "bull-worker", "config", "config-required",
        "secret"])
def test_wrong_argument_type_names_the_parameter_not_the_secret(call, parameter):
    message = raises_without_secret(call, parameter)
    assert "must be" in message


@pytest.mark.parametrize("call, parameter", [
    (lambda: jobqueue.PgQueue(PG_URL, pool_sise=4), "pool_sise"),
    (lambda: jobqueue.BullQueue(REDIS_URL, "q", bogus=1), "bogus"),
    (lambda: jobqueue.BullWorker(REDIS_URL, "q", lambda job: None, concurency=4), "concurency"),
    (lambda: jobqueue.Config.load("worker", environ=ENVIRON, env=ENVIRON), "env"),
    (lambda: jobqueue.Secret(PASSWORD, hidden=True), "hidden"),
], ids=["pg", "bull", "bull-worker", "config", "secret"])
def test_unknown_keyword_names_it_not_the_secret(call, parameter):
    message = raises_without_secret(call, f"unexpected keyword argument '{parameter}'")
    assert "values not shown" in message


def test_no_mismatched_call_shows_an_argument_value():
    # Every function, method and constructor of the module: a keyword none takes fails the
    # dispatch before anything runs.
    checked = 0
    for name in jobqueue.__all__:
        item = getattr(jobqueue, name)
        callables = []
        if isinstance(item, type) and type(item).__name__ == "pybind11_type":
            callables.append(item)
            callables += [getattr(item, attr) for attr, value in vars(item).items()
                          if callable(value) and attr != "__init__"]
        elif callable(item) and not isinstance(item, type):
            callables.append(item)
        for fn in callables:
            with pytest.raises(TypeError) as raised:
                if fn(PASSWORD, PG_URL, no_such_argument=ENVIRON) is NotImplemented:
                    raise TypeError("an operator")  # __eq__ and friends do not raise
            assert PASSWORD not in str(raised.value), (name, fn, str(raised.value))
            checked += 1
    assert checked > 50


def test_wrong_argument_type_is_a_type_error(queue, redis_url):
    # These were pybind11 cast errors, raised as RuntimeError.
    raises_without_secret(lambda: jobqueue.BullQueue(REDIS_URL, "q",
                                                     tls_ca_file=pathlib.Path("/ca.pem")),
                          "tls_ca_file")
    raises_without_secret(lambda: jobqueue.Config.load("worker", environ={**ENVIRON, "PORT": 5432}),
                          "environ")
    raises_without_secret(lambda: jobqueue.Config.load("worker", environ=[("A", PG_URL)]),
                          "environ")
    raises_without_secret(lambda: jobqueue.Config.load("worker", scopes_path=pathlib.Path("s"),
                                                       environ=ENVIRON), "scopes_path")
    raises_without_secret(lambda: jobqueue.PgQueue(4), "database")
    raises_without_secret(lambda: jobqueue.configure_logging(level=5), "level")
    raises_without_secret(lambda: queue.claim("t", worker_id=5), "worker_id")
    raises_without_secret(lambda: queue.claim([1]), "job_types")
    raises_without_secret(lambda: queue.enqueue("t", dedupe_key=5), "dedupe_key")
    raises_without_secret(lambda: queue.count(status=5), "status")
    raises_without_secret(lambda: jobqueue.Worker(queue, environment=5), "environment")
    raises_without_secret(lambda: jobqueue.Worker(queue, config="prod"), "config")
    # A value of the right type that does not fit is bad input, not a wrong type.
    raises_without_secret(lambda: jobqueue.PgQueue(PG_URL, pool_size=2**70), "pool_size",
                          jobqueue.InvalidArgumentError)
    name = f"py_errors_{os.getpid()}"
    try:
        with jobqueue.BullQueue(redis_url, name) as bull:
            raises_without_secret(lambda: bull.promote(5), "id")
    finally:
        subprocess.run(
            f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:{name}:*' | "
            f"xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
            shell=True, check=True)


def test_environ_takes_any_mapping():
    config = jobqueue.Config.load("worker", load_env_files=False,
                                  environ=types.MappingProxyType({"DATABASE_URL": PG_URL}))
    assert config.database_url.reveal() == PG_URL
