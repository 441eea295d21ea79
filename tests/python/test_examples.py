"""The examples in examples/python, run as a user would run them, against the real servers."""

import os
import signal
import subprocess
import time

import pytest

import jobqueue
from test_bull import bull_name  # noqa: F401  (fixture)

EXAMPLES = os.path.join(os.environ.get("JOBQUEUE_SOURCE_DIR", "../.."), "examples", "python")


def example_env(**extra):
    """The environment of an example: the built package and the examples importable, no
    service URLs unless given (so each example shows which variables it reads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = os.pathsep.join([EXAMPLES, os.environ.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def run_example(python, args, env, cwd, timeout=60):
    return subprocess.run([python, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_ingest_processor(queue, schema, database_url, python, tmp_path):
    good = queue.enqueue("ingest_csv", {"file": "a.csv",
                                        "csv": "name,amount,qty\nann,10.5,1\nbob,4.5,2\n"}).id
    ragged = queue.enqueue("ingest_csv", {"file": "b.csv",
                                          "csv": "name,amount\nann,1\nbroken\nbob,2\n"}).id
    headless = queue.enqueue("ingest_csv", {"file": "c.csv", "csv": ""}, max_attempts=1).id
    env = example_env(SUPABASE_MODE="dev", ENVIRONMENT="dev", WORKER_POLL_INTERVAL="2.0",
                      SUPABASE_URL_DEV="https://dev.example.supabase.co",
                      SUPABASE_SERVICE_ROLE_KEY_DEV="not-a-real-key",
                      SUPABASE_DB_URL_DEV=database_url, LOG_LEVEL="warn")
    # The schema comes from .env, as every setting may.
    (tmp_path / ".env").write_text(f"JOBQUEUE_SCHEMA={schema}\n")
    result = run_example(python, ["-m", "ingest_processor", "--exit-when-idle", "1"], env,
                         tmp_path)
    assert result.returncode == 0, result.stderr
    # The seed's start-up lines, first.
    assert result.stdout.splitlines()[:3] == [
        "🚀 Starting Ingest Processor Worker (env=dev)",
        "Poll interval: 2.0s",
        "Job types: ingest_csv",
    ]
    assert "Stopped: 2 completed, 1 failed" in result.stdout
    job = queue.get(good)
    assert job.status == "completed"
    assert job.result == {"file": "a.csv", "rows": 2, "columns": ["name", "amount", "qty"],
                          "sums": {"amount": 15.0, "qty": 3.0}, "malformed_lines": []}
    assert queue.get(ragged).result["malformed_lines"] == [3]
    assert queue.get(ragged).result["rows"] == 2
    failed = queue.get(headless)
    assert failed.status == "failed"
    assert failed.last_error == "ValueError: missing or blank CSV header"


def test_ingest_processor_config_error(python, tmp_path):
    # SUPABASE_MODE=dev needs its URL, key and database URL: a configuration error, exit 78.
    env = example_env(SUPABASE_MODE="dev", ENVIRONMENT="dev")
    result = run_example(python, ["-m", "ingest_processor"], env, tmp_path)
    assert result.returncode == jobqueue.EXIT_CONFIG_ERROR == 78
    assert "SUPABASE_DB_URL_DEV" in result.stderr
    assert "Starting" not in result.stdout


def test_bull_worker(redis_url, bull_name, python, tmp_path):  # noqa: F811
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        thumb = q.add("thumbnail", {"width": 1024, "height": 512})
        welcome = q.add("welcome", {"to": "ann@example.com"})
        bad = q.add("thumbnail", {"width": 0, "height": 10}, {"attempts": 3})
        env = example_env(REDIS_URL=redis_url, LOG_LEVEL="warn")
        result = run_example(python, [os.path.join(EXAMPLES, "bull_worker.py"), bull_name,
                                      "--exit-when-idle", "1"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"Starting BullMQ worker on {bull_name} (jobs: thumbnail, welcome)" in result.stdout
        assert "Stopped: 2 completed, 1 failed, 0 retried" in result.stdout
        assert q.get_job(thumb)["return_value"] == {"width": 128, "height": 64}
        assert q.get_job(welcome)["return_value"] == {"message": "Welcome, ann@example.com!",
                                                       "attempt": 1}
        failed = q.get_job(bad)
        assert failed["failed_reason"] == "bad size 0x10" and failed["attempts_made"] == 1


def test_quickstart(queue, schema, database_url, python, tmp_path):
    env = example_env(DATABASE_URL=database_url, JOBQUEUE_SCHEMA=schema)
    result = run_example(python, [os.path.join(EXAMPLES, "quickstart.py")], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("job ") and ": completed, result {" in result.stdout
    job_id = int(result.stdout.split()[1].rstrip(":"))
    job = queue.get(job_id)
    assert job.status == "completed" and job.attempts == 1
    assert job.result == {"sent_to": "ops@example.com", "month": "2026-11"}
    assert queue.count() == 1


def test_examples_are_importable_and_ingest_handles_bad_payloads():
    import importlib
    import sys
    sys.path.insert(0, EXAMPLES)
    try:
        ingest = importlib.import_module("ingest_processor")
    finally:
        sys.path.remove(EXAMPLES)

    class FakeJob:
        payload = {"file": "x.csv"}

    with pytest.raises(ValueError, match="payload must be"):
        ingest.ingest_csv(FakeJob())


def test_bull_worker_stops_on_sigterm(redis_url, bull_name, python, tmp_path):  # noqa: F811
    env = example_env(REDIS_URL=redis_url, LOG_LEVEL="warn")
    process = subprocess.Popen([python, os.path.join(EXAMPLES, "bull_worker.py"), bull_name],
                               env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith(f"Starting BullMQ worker on {bull_name}")
        with jobqueue.BullQueue(redis_url, bull_name) as q:
            job = q.add("welcome", {"to": "bob@example.com"})
            deadline = time.monotonic() + 60
            while q.counts()["completed"] == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert q.get_job(job)["return_value"]["message"] == "Welcome, bob@example.com!"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Stopped: 1 completed, 0 failed, 0 retried" in out
