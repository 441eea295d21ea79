"""Cross-language: jobs added in one language and processed in another, on the real servers.

Postgres: Python -> the C++ CLI worker, the C++ CLI -> a Python Worker, the C API (ctypes) ->
a Python Worker. BullMQ: Python -> a Node bullmq Worker, Node's Queue.add -> the Python
BullWorker (Node reads the return values), the C API -> the Python BullWorker."""

import contextlib
import ctypes
import json
import os
import subprocess

import jobqueue
from conftest import built
from test_bull import bull_name  # noqa: F401  (fixture)
from test_ctypes import config, jq, pg  # noqa: F401  (fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PEER = os.path.join(HERE, "bullmq_peer.mjs")


def cli(*args, schema):
    """Runs the built `jobqueue` CLI on the suite's database and returns its stdout."""
    env = dict(os.environ, JOBQUEUE_SCHEMA=schema, LOG_LEVEL="warn")
    result = subprocess.run([built("JOBQUEUE_CLI"), *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def python_worker(queue, job_type, handler):
    worker = jobqueue.Worker(queue, poll_interval=0.1, exit_when_idle=0.5, log_startup=False)
    worker.register(job_type, handler)
    return worker.run()


@contextlib.contextmanager
def node(*args):
    """Runs the Node peer (the pinned bullmq in the repo's node_modules); killed if the test
    leaves before it closed."""
    peer = subprocess.Popen(["/usr/bin/env", "node", NODE_PEER, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield peer
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.communicate()


def test_python_enqueues_the_cpp_worker_processes(queue, schema):
    payloads = [{"file": f"f{i}.csv", "rows": [i, i + 1]} for i in range(4)]
    ids = [r.id for r in queue.enqueue_many([("xlang_echo", p) for p in payloads])]
    out = cli("work", "--types", "xlang_echo", "--handler", "echo", "--exit-when-idle", "0.5",
              "--poll-interval", "0.1", "--name", "Interop", schema=schema)
    assert "completed 4, failed 0" in out
    for job_id, payload in zip(ids, payloads):
        job = queue.get(job_id)
        assert job.status == "completed" and job.result == payload


def test_cpp_cli_enqueues_a_python_worker_processes(queue, schema):
    out = cli("enqueue", "--type", "xlang_py", "--payload", '{"n": 7}', "--count", "3",
              schema=schema)
    assert out.startswith("enqueued 3 jobs")
    seen = []

    def handle(job):
        seen.append(job.id)
        return {"n": job.payload["n"] * 6}

    stats = python_worker(queue, "xlang_py", handle)
    assert stats.completed == 3 and len(seen) == 3
    assert [queue.get(i).result for i in sorted(seen)] == [{"n": 42}] * 3
    assert queue.count(status="completed", job_type="xlang_py") == 3


def test_c_api_enqueues_a_python_worker_processes(jq, pg, queue):  # noqa: F811
    job_id = ctypes.c_int64()
    jq.call("jq_pg_enqueue", pg, b"xlang_c", b'{"from": "C"}', None, ctypes.byref(job_id), None)
    stats = python_worker(queue, "xlang_c", lambda job: {"echo": job.payload, "by": "python"})
    assert stats.completed == 1
    job = queue.get(job_id.value)
    assert job.status == "completed"
    assert job.result == {"echo": {"from": "C"}, "by": "python"}


def test_python_adds_a_node_worker_processes(redis_url, bull_name):  # noqa: F811
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        ids = [q.add("resize", {"i": i}, {"attempts": 2}) for i in range(3)]
        ids.append(q.add("resize", {"custom": True}, {"jobId": "py-custom-1"}))
        with node("work", bull_name, str(len(ids))) as peer:
            # Returns once the child exited and closed its pipes (all output read).
            out, err = peer.communicate(timeout=90)
        assert peer.returncode == 0, err
        assert sorted(json.loads(out)["completed"]) == sorted(ids)
        job = q.get_job("py-custom-1")
        assert job["return_value"] == {"by": "node", "name": "resize", "data": {"custom": True}}
        assert q.get_job(ids[1])["return_value"]["data"] == {"i": 1}
        assert q.counts()["completed"] == 4


def test_node_adds_the_python_bull_worker_processes(redis_url, bull_name):  # noqa: F811
    jobs = [["square", {"n": 3}, {}], ["square", {"n": 4}, {"jobId": "node-4"}],
            ["square", {"n": -1}, {"attempts": 3}]]
    with node("add", bull_name, json.dumps(jobs)) as peer:
        added = json.loads(peer.stdout.readline())
        assert len(added["ids"]) == 3 and added["ids"][1] == "node-4"

        worker = jobqueue.BullWorker(redis_url, bull_name, exit_when_idle=0.5, drain_delay=0.2)

        @worker.handler("square")
        def square(job):
            if job.data["n"] < 0:
                raise jobqueue.UnrecoverableError("negative input")
            return {"square": job.data["n"] ** 2, "by": "python"}

        stats = worker.run()
        out, err = peer.communicate(timeout=90)
    assert peer.returncode == 0, err
    results = json.loads(out)["results"]
    first, second, third = added["ids"]
    assert results[first] == {"returnvalue": {"square": 9, "by": "python"}}
    assert results[second] == {"returnvalue": {"square": 16, "by": "python"}}
    assert results[third] == {"failedReason": "negative input"}
    assert stats.completed == 2 and stats.failed == 1


def test_c_api_adds_the_python_bull_worker_processes(jq, redis_url, bull_name):  # noqa: F811
    bull = ctypes.c_void_p()
    jq.call("jq_bull_queue_open", redis_url.encode(), bull_name.encode(), None,
            ctypes.byref(bull))
    try:
        job_id = ctypes.c_void_p()
        jq.call("jq_bull_add", bull, b"hello", b'{"lang": "C"}', None, ctypes.byref(job_id))
        added = jq.take_string(job_id)
    finally:
        jq.jq_bull_queue_close(bull)
    worker = jobqueue.BullWorker(redis_url, bull_name, lambda job: f"hello from {job.data['lang']}",
                                 exit_when_idle=0.5, drain_delay=0.2)
    assert worker.run().completed == 1
    with jobqueue.BullQueue(redis_url, bull_name) as q:
        assert q.get_job(added)["return_value"] == "hello from C"
