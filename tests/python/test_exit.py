"""A worker running in a daemon thread when the interpreter exits: the process used to abort
(handler threads taking the GIL while Python ended them unwound through frames holding Python
references). Now an exit hook stops the worker first, so in-flight jobs finish or go back."""

import os
import subprocess
import textwrap

import jobqueue

# Runs `make_worker` in a daemon thread with jobs flowing, then lets the main thread end.
_SCRIPT = """
import os, threading, time, jobqueue
{setup}
def handler(job):
    time.sleep(0.002)
    return {{"ok": 1}}
{make_worker}
threading.Thread(target=worker.run, kwargs={{"handle_signals": False}}, daemon=True).start()
time.sleep(0.3)
print("main thread done", flush=True)
"""


def run_and_exit(python, setup, make_worker):
    script = _SCRIPT.format(setup=textwrap.dedent(setup), make_worker=textwrap.dedent(make_worker))
    return subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=120)


def test_pg_worker_in_a_daemon_thread_lets_the_process_exit(queue, schema, python):
    for _ in range(3):
        queue.enqueue_many([("t", {})] * 300)
        result = run_and_exit(python, f"""
            q = jobqueue.PgQueue(os.environ["DATABASE_URL"], schema={schema!r})
        """, """
            worker = jobqueue.Worker(q, concurrency=8, log_startup=False)
            worker.register("t", handler)
        """)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "main thread done" in result.stdout
        counts = {(c.status, c.count) for c in queue.counts() if c.count}
        # Nothing left claimed or failed: each job finished or went back to pending.
        assert {status for status, _ in counts} <= {"pending", "completed"}, counts


def test_bull_worker_in_a_daemon_thread_lets_the_process_exit(redis_url, python):
    name = f"py_exit_{os.getpid()}"
    try:
        with jobqueue.BullQueue(redis_url, name) as queue:
            for _ in range(3):
                for i in range(300):
                    queue.add("x", {"i": i})
                result = run_and_exit(python, "", f"""
                    worker = jobqueue.BullWorker(os.environ["REDIS_URL"], {name!r}, handler,
                                                 concurrency=8)
                """)
                assert result.returncode == 0, result.stderr[-2000:]
                assert "main thread done" in result.stdout
                counts = queue.counts()
                # Each job finished or went back to wait: none left active or failed.
                assert counts["active"] == 0 and counts["failed"] == 0, counts
    finally:
        subprocess.run(
            f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:{name}:*' | "
            f"xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
            shell=True, check=True)
