"""The C ABI is usable with no compiler at all: libjobqueue_c through ctypes.

Declares the prototypes it needs from include/jobqueue/c.h and drives config, the Postgres
queue, a worker whose handler is a Python callback, and the BullMQ producer."""

import ctypes
import json
import os
import subprocess

import pytest

from conftest import built

c_char_pp = ctypes.POINTER(ctypes.c_char_p)
HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

JQ_OK, JQ_INVALID_ARGUMENT, JQ_NOT_FOUND, JQ_ABORTED = 0, 3, 5, 10
JQ_LEASE_LOST = 100
JQ_INTERNAL = 13
JQ_WORKER_COMPLETED, JQ_WORKER_FAILED = 0, 1
JQ_BULL_WAITING, JQ_BULL_DELAYED, JQ_BULL_STATE_COUNT = 6, 2, 8

P = ctypes.c_void_p
PROTOTYPES = {
    "jq_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "jq_version": (ctypes.c_char_p, []),
    "jq_free": (None, [P]),
    "jq_configure_logging": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, P]),
    "jq_config_options_create": (P, []),
    "jq_config_options_destroy": (None, [P]),
    "jq_config_options_set_service": (None, [P, ctypes.c_char_p]),
    "jq_config_options_set_load_env_files": (None, [P, ctypes.c_int]),
    "jq_config_options_set_env": (None, [P, ctypes.c_char_p, ctypes.c_char_p]),
    "jq_config_load": (ctypes.c_int, [P, ctypes.POINTER(P), P]),
    "jq_config_destroy": (None, [P]),
    "jq_config_environment": (ctypes.c_char_p, [P]),
    "jq_config_database_url_redacted": (ctypes.c_char_p, [P]),
    "jq_config_exit_code": (ctypes.c_int, [ctypes.c_int]),
    "jq_pg_options_create": (P, []),
    "jq_pg_options_destroy": (None, [P]),
    "jq_pg_options_set_schema": (None, [P, ctypes.c_char_p]),
    "jq_pg_queue_open_config": (ctypes.c_int, [P, P, ctypes.POINTER(P), P]),
    "jq_pg_queue_close": (None, [P]),
    "jq_pg_queue_migrate": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_int), P]),
    "jq_enqueue_options_create": (P, []),
    "jq_enqueue_options_destroy": (None, [P]),
    "jq_enqueue_options_set_max_attempts": (None, [P, ctypes.c_int]),
    "jq_enqueue_options_set_priority": (None, [P, ctypes.c_int]),
    "jq_pg_enqueue": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_char_p, P,
                                     ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int),
                                     P]),
    "jq_pg_batch_create": (P, []),
    "jq_pg_batch_destroy": (None, [P]),
    "jq_pg_batch_add": (None, [P, ctypes.c_char_p, ctypes.c_char_p, P]),
    "jq_pg_enqueue_batch": (ctypes.c_int, [P, P, ctypes.POINTER(ctypes.c_int64), P, P]),
    "jq_claim_options_create": (P, []),
    "jq_claim_options_destroy": (None, [P]),
    "jq_claim_options_add_job_type": (None, [P, ctypes.c_char_p]),
    "jq_claim_options_set_limit": (None, [P, ctypes.c_int]),
    "jq_pg_claim": (ctypes.c_int, [P, P, ctypes.POINTER(ctypes.POINTER(P)),
                                   ctypes.POINTER(ctypes.c_size_t), P]),
    "jq_pg_leases_free": (None, [ctypes.POINTER(P), ctypes.c_size_t]),
    "jq_pg_lease_job_id": (ctypes.c_int64, [P]),
    "jq_pg_lease_payload": (ctypes.c_char_p, [P]),
    "jq_pg_lease_attempt": (ctypes.c_int, [P]),
    "jq_pg_complete": (ctypes.c_int, [P, P, ctypes.c_char_p, P]),
    "jq_pg_fail": (ctypes.c_int, [P, P, ctypes.c_char_p, ctypes.c_int64,
                                  ctypes.POINTER(ctypes.c_int), P, P]),
    "jq_pg_get": (ctypes.c_int, [P, ctypes.c_int64, ctypes.POINTER(P), P]),
    "jq_pg_job_destroy": (None, [P]),
    "jq_pg_job_status": (ctypes.c_char_p, [P]),
    "jq_pg_job_result": (ctypes.c_char_p, [P]),
    "jq_pg_job_last_error": (ctypes.c_char_p, [P]),
    "jq_pg_counts": (ctypes.c_int, [P, ctypes.POINTER(P), P]),
    "jq_pg_counts_destroy": (None, [P]),
    "jq_pg_counts_total": (ctypes.c_int64, [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
    "jq_worker_options_create": (P, []),
    "jq_worker_options_destroy": (None, [P]),
    "jq_worker_options_set_exit_when_idle_ms": (None, [P, ctypes.c_int64]),
    "jq_worker_options_set_poll_interval_ms": (None, [P, ctypes.c_int64]),
    "jq_worker_options_set_log_startup": (None, [P, ctypes.c_int]),
    "jq_pg_worker_create": (ctypes.c_int, [P, P, ctypes.POINTER(P), P]),
    "jq_pg_worker_destroy": (None, [P]),
    "jq_pg_worker_register": (ctypes.c_int, [P, ctypes.c_char_p, HANDLER, P, P]),
    "jq_pg_worker_run": (ctypes.c_int, [P, P]),
    "jq_pg_worker_stat": (ctypes.c_int64, [P, ctypes.c_int]),
    "jq_job_context_lease": (P, [P]),
    "jq_job_context_set_result": (None, [P, ctypes.c_char_p]),
    "jq_job_context_set_error": (None, [P, ctypes.c_char_p]),
    "jq_bull_queue_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, P, ctypes.POINTER(P),
                                          P]),
    "jq_bull_queue_close": (None, [P]),
    "jq_bull_add": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.POINTER(P), P]),
    "jq_bull_counts": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t, P]),
}


class JobQueueC:
    """A thin wrapper: every fallible call raises CError with the code and the message."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        for name, (restype, argtypes) in PROTOTYPES.items():
            function = getattr(self.lib, name)
            function.restype = restype
            function.argtypes = argtypes

    def __getattr__(self, name):
        return getattr(self.lib, name)

    def call(self, name, *args):
        """Calls a jq_* function that takes errptr last; returns on JQ_OK, raises otherwise."""
        err = ctypes.c_void_p()
        code = getattr(self.lib, name)(*args, ctypes.byref(err))
        message = ctypes.cast(err, ctypes.c_char_p).value.decode() if err.value else None
        self.lib.jq_free(err)
        if code != JQ_OK:
            raise CError(code, self.lib.jq_status_name(code).decode(), message)

    def take_string(self, pointer):
        text = ctypes.cast(pointer, ctypes.c_char_p).value.decode()
        self.lib.jq_free(pointer)
        return text


class CError(Exception):
    def __init__(self, code, name, message):
        super().__init__(f"{name}: {message}")
        self.code, self.name, self.message = code, name, message


@pytest.fixture(scope="module")
def jq():
    lib = JobQueueC(built("JOBQUEUE_C_LIBRARY"))
    lib.call("jq_configure_logging", b"warn", None, None)
    return lib


@pytest.fixture
def config(jq, database_url):
    options = jq.jq_config_options_create()
    jq.jq_config_options_set_service(options, b"worker")
    jq.jq_config_options_set_load_env_files(options, 0)
    jq.jq_config_options_set_env(options, b"DATABASE_URL", database_url.encode())
    handle = ctypes.c_void_p()
    jq.call("jq_config_load", options, ctypes.byref(handle))
    jq.jq_config_options_destroy(options)
    yield handle
    jq.jq_config_destroy(handle)


@pytest.fixture
def pg(jq, config, schema):
    options = jq.jq_pg_options_create()
    jq.jq_pg_options_set_schema(options, schema.encode())
    handle = ctypes.c_void_p()
    jq.call("jq_pg_queue_open_config", config, options, ctypes.byref(handle))
    jq.jq_pg_options_destroy(options)
    version = ctypes.c_int()
    jq.call("jq_pg_queue_migrate", handle, ctypes.byref(version))
    assert version.value >= 1
    yield handle
    jq.jq_pg_queue_close(handle)


def job_field(jq, pg, job_id, accessor):
    job = ctypes.c_void_p()
    jq.call("jq_pg_get", pg, job_id, ctypes.byref(job))
    try:
        value = getattr(jq, accessor)(job)
        return value.decode() if value is not None else None
    finally:
        jq.jq_pg_job_destroy(job)


def test_basics(jq, config):
    assert jq.jq_status_name(JQ_ABORTED) == b"ABORTED"
    assert jq.jq_status_name(JQ_LEASE_LOST) == b"LEASE_LOST"
    assert jq.jq_version().decode().count(".") == 2
    assert jq.jq_config_environment(config) == b"dev"
    assert b"****" in jq.jq_config_database_url_redacted(config)
    assert jq.jq_config_exit_code(7) == 77 and jq.jq_config_exit_code(3) == 78
    with pytest.raises(CError) as raised:
        jq.call("jq_configure_logging", b"loud", None, None)
    assert raised.value.code == JQ_INVALID_ARGUMENT and "log level" in raised.value.message


def test_enqueue_claim_complete_fail(jq, pg):
    job_id = ctypes.c_int64()
    inserted = ctypes.c_int()
    jq.call("jq_pg_enqueue", pg, b"ctypes_job", b'{"n": 1}', None, ctypes.byref(job_id),
            ctypes.byref(inserted))
    assert job_id.value > 0 and inserted.value == 1
    options = jq.jq_enqueue_options_create()
    jq.jq_enqueue_options_set_max_attempts(options, 1)
    batch = jq.jq_pg_batch_create()
    jq.jq_pg_batch_add(batch, b"ctypes_job", b'{"n": 2}', options)
    jq.jq_pg_batch_add(batch, b"ctypes_job", b'{"n": 3}', None)
    ids = (ctypes.c_int64 * 2)()
    jq.call("jq_pg_enqueue_batch", pg, batch, ids, None)
    jq.jq_pg_batch_destroy(batch)
    jq.jq_enqueue_options_destroy(options)
    assert ids[0] > job_id.value and ids[1] > ids[0]

    with pytest.raises(CError) as raised:
        jq.call("jq_pg_enqueue", pg, b"ctypes_job", b"{oops", None, None, None)
    assert raised.value.code == JQ_INVALID_ARGUMENT and "JSON" in raised.value.message

    claim = jq.jq_claim_options_create()
    jq.jq_claim_options_add_job_type(claim, b"ctypes_job")
    jq.jq_claim_options_set_limit(claim, 10)
    leases = ctypes.POINTER(ctypes.c_void_p)()
    count = ctypes.c_size_t()
    jq.call("jq_pg_claim", pg, claim, ctypes.byref(leases), ctypes.byref(count))
    jq.jq_claim_options_destroy(claim)
    assert count.value == 3
    payloads = [json.loads(jq.jq_pg_lease_payload(leases[i])) for i in range(3)]
    assert [p["n"] for p in payloads] == [1, 2, 3]
    assert jq.jq_pg_lease_attempt(leases[0]) == 1
    jq.call("jq_pg_complete", pg, leases[0], b'{"done": true}')
    will_retry = ctypes.c_int(-1)
    jq.call("jq_pg_fail", pg, leases[1], b"bad row", -1, ctypes.byref(will_retry), None)
    assert will_retry.value == 0
    with pytest.raises(CError) as raised:
        jq.call("jq_pg_complete", pg, leases[0], None)
    assert raised.value.code == JQ_LEASE_LOST and "lease lost" in raised.value.message
    jq.call("jq_pg_complete", pg, leases[2], None)
    jq.jq_pg_leases_free(leases, count)

    assert job_field(jq, pg, job_id.value, "jq_pg_job_status") == "completed"
    assert json.loads(job_field(jq, pg, job_id.value, "jq_pg_job_result")) == {"done": True}
    assert job_field(jq, pg, ids[0], "jq_pg_job_status") == "failed"
    assert job_field(jq, pg, ids[0], "jq_pg_job_last_error") == "bad row"
    with pytest.raises(CError) as raised:
        job_field(jq, pg, 987654321, "jq_pg_job_status")
    assert raised.value.code == JQ_NOT_FOUND

    counts = ctypes.c_void_p()
    jq.call("jq_pg_counts", pg, ctypes.byref(counts))
    assert jq.jq_pg_counts_total(counts, None, b"ctypes_job", b"completed") == 2
    assert jq.jq_pg_counts_total(counts, None, b"ctypes_job", b"failed") == 1
    jq.jq_pg_counts_destroy(counts)


def test_worker_with_a_python_callback(jq, pg):
    batch = jq.jq_pg_batch_create()
    for i in range(5):
        jq.jq_pg_batch_add(batch, b"ctypes_work", json.dumps({"i": i}).encode(), None)
    jq.jq_pg_batch_add(batch, b"ctypes_work", b'{"i": -1}', None)
    jq.call("jq_pg_enqueue_batch", pg, batch, None, None)
    jq.jq_pg_batch_destroy(batch)

    seen = []

    @HANDLER
    def handle(user_data, job):
        payload = json.loads(jq.jq_pg_lease_payload(jq.jq_job_context_lease(job)))
        if payload["i"] < 0:
            jq.jq_job_context_set_error(job, b"negative input")
            return JQ_INTERNAL
        seen.append(payload["i"])
        jq.jq_job_context_set_result(job, json.dumps({"square": payload["i"] ** 2}).encode())
        return JQ_OK

    options = jq.jq_worker_options_create()
    jq.jq_worker_options_set_exit_when_idle_ms(options, 500)
    jq.jq_worker_options_set_poll_interval_ms(options, 100)
    jq.jq_worker_options_set_log_startup(options, 0)
    worker = ctypes.c_void_p()
    jq.call("jq_pg_worker_create", pg, options, ctypes.byref(worker))
    jq.jq_worker_options_destroy(options)
    jq.call("jq_pg_worker_register", worker, b"ctypes_work", handle, None)
    jq.call("jq_pg_worker_run", worker)
    completed = jq.jq_pg_worker_stat(worker, JQ_WORKER_COMPLETED)
    failed = jq.jq_pg_worker_stat(worker, JQ_WORKER_FAILED)
    jq.jq_pg_worker_destroy(worker)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert completed == 5 and failed == 1


def test_bull_producer(jq, redis_url):
    name = f"ctypes_{os.getpid()}".encode()
    bull = ctypes.c_void_p()
    jq.call("jq_bull_queue_open", redis_url.encode(), name, None, ctypes.byref(bull))
    try:
        job_id = ctypes.c_void_p()
        jq.call("jq_bull_add", bull, b"email", b'{"to": "a@example.com"}', None,
                ctypes.byref(job_id))
        assert jq.take_string(job_id) == "1"
        jq.call("jq_bull_add", bull, b"email", None, b'{"delay": 60000}', None)
        counts = (ctypes.c_int64 * JQ_BULL_STATE_COUNT)()
        jq.call("jq_bull_counts", bull, counts, JQ_BULL_STATE_COUNT)
        assert counts[JQ_BULL_WAITING] == 1 and counts[JQ_BULL_DELAYED] == 1
        with pytest.raises(CError) as raised:
            jq.call("jq_bull_add", bull, b"email", b"{}", b'{"nope": 1}', None)
        assert raised.value.code == JQ_INVALID_ARGUMENT
    finally:
        jq.jq_bull_queue_close(bull)
        subprocess.run(
            f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:{name.decode()}:*'"
            " | xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
            shell=True, check=True)
