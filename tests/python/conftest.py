"""Fixtures of the Python suite: the real local servers (scripts/services env), a fresh
Postgres schema per test (dropped afterwards), and the built artifacts ctest points at."""

import gc
import itertools
import os
import subprocess
import sys
import threading
import time
import weakref

import pytest

import jobqueue

_counter = itertools.count()


def require_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f'{name} is not set: run eval "$(scripts/services env)"', pytrace=False)
    return value


def psql(sql, *, capture=True):
    """Runs SQL through psql on DATABASE_URL and returns its unaligned output."""
    result = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", require_env("DATABASE_URL"),
         "-c", "SET client_min_messages = warning", "-c", sql],
        check=True, capture_output=capture, text=True)
    return result.stdout.strip()


def built(env_name):
    """A path ctest passes in the environment (built executables and libraries)."""
    path = require_env(env_name)
    assert os.path.exists(path), f"{env_name}={path} does not exist"
    return path


def assert_freed_with_a_handler_referring_back(make_worker):
    """make_worker(handler) -> a worker running `handler`, here a bound method of the object
    that holds the worker: a cycle through C++ that the cycle collector must see."""
    class Service:
        def __init__(self):
            self.worker = make_worker(self.handle)

        def handle(self, job):
            return None

    service = Service()
    gone = weakref.ref(service.worker)
    del service
    gc.collect()
    assert gone() is None


@pytest.fixture
def database_url():
    return require_env("DATABASE_URL")


@pytest.fixture
def redis_url():
    return require_env("REDIS_URL")


@pytest.fixture
def schema():
    name = f"py_{os.getpid()}_{next(_counter)}"
    yield name
    psql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def queue(database_url, schema):
    with jobqueue.PgQueue(database_url, schema=schema, pool_size=4, retry_jitter=0.0) as q:
        q.migrate()
        yield q


@pytest.fixture(autouse=True, scope="session")
def quiet_logs():
    jobqueue.configure_logging(level="warn")


class Ticker:
    """Counts in a Python thread every 5 ms: if another call held the GIL, it would not."""

    def __init__(self):
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.ticks += 1
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


@pytest.fixture
def ticker():
    return Ticker


@pytest.fixture
def sql():
    return psql


@pytest.fixture
def python():
    """The interpreter running the suite (the one the module was built for)."""
    return sys.executable
