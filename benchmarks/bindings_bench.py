#!/usr/bin/env python3
"""Jobs/s through the bindings next to the C++ library, on the local Postgres.

    eval "$(scripts/services env)"
    PYTHONPATH=build/bindings/python /usr/bin/python3 benchmarks/bindings_bench.py [--build build]
        [--jobs 20000] [--batch 100] [--rounds 3]

Each path does the same calls on a fresh schema: enqueue --jobs jobs in batches of 1,000, then
claim --batch at a time and complete each batch in one round trip until none is left.
  c++     build/benchmarks/bindings_ref (PgQueue directly)
  python  the jobqueue module: enqueue_many, claim(limit=...), complete_many
  c-api   libjobqueue_c through ctypes: jq_pg_enqueue_batch, jq_pg_claim, jq_pg_complete_many
Then the worker runtimes with a no-op handler, from Run() until every job is completed:
Postgres at concurrency 8, batch --batch, 1 dispatcher (build/benchmarks/pg_e2e --only work,
C++ handler, against jobqueue.Worker, Python handler), and BullMQ on REDIS_URL at concurrency
8 (build/benchmarks/bull_e2e process, against jobqueue.BullWorker). Rounds are interleaved
and the median is reported.
"""

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import jobqueue

PAYLOAD = '{{"n": {}, "s": "hello world"}}'
SCHEMA = "bench_bindings"


def psql(sql):
    subprocess.run(["psql", "-X", "-q", os.environ["DATABASE_URL"], "-c",
                    "SET client_min_messages = warning", "-c", sql], check=True)


def fresh_schema():
    psql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def run_cpp(args):
    fresh_schema()
    out = subprocess.run([os.path.join(args.build, "benchmarks", "bindings_ref"), "--schema",
                          SCHEMA, "--jobs", str(args.jobs), "--batch", str(args.batch)],
                         check=True, capture_output=True, text=True).stdout
    return {line["phase"]: line["seconds"] for line in map(json.loads, out.splitlines())}


def run_python(args):
    fresh_schema()
    with jobqueue.PgQueue(os.environ["DATABASE_URL"], schema=SCHEMA) as queue:
        queue.migrate()
        start = time.perf_counter()
        for first in range(0, args.jobs, 1000):
            last = min(first + 1000, args.jobs)
            queue.enqueue_many([("bench", {"n": i, "s": "hello world"}) for i in range(first, last)])
        enqueue = time.perf_counter() - start
        start = time.perf_counter()
        done = 0
        while leases := queue.claim("bench", limit=args.batch, worker_id="bindings-py"):
            if queue.complete_many(leases):
                raise RuntimeError("leases lost during the benchmark")
            done += len(leases)
        claim = time.perf_counter() - start
    if done != args.jobs:
        raise RuntimeError(f"python: processed {done} of {args.jobs}")
    return {"enqueue": enqueue, "claim+complete": claim}


class CApi:
    """The few jq_* functions the benchmark needs, through ctypes."""

    def __init__(self, path):
        P = ctypes.c_void_p
        self.lib = lib = ctypes.CDLL(path)
        signatures = {
            "jq_free": (None, [P]),
            "jq_configure_logging": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p,
                                                    ctypes.c_char_p, P]),
            "jq_pg_options_create": (P, []),
            "jq_pg_options_destroy": (None, [P]),
            "jq_pg_options_set_schema": (None, [P, ctypes.c_char_p]),
            "jq_pg_queue_open": (ctypes.c_int, [ctypes.c_char_p, P, ctypes.POINTER(P), P]),
            "jq_pg_queue_close": (None, [P]),
            "jq_pg_queue_migrate": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_int), P]),
            "jq_pg_batch_create": (P, []),
            "jq_pg_batch_destroy": (None, [P]),
            "jq_pg_batch_add": (None, [P, ctypes.c_char_p, ctypes.c_char_p, P]),
            "jq_pg_batch_clear": (None, [P]),
            "jq_pg_enqueue_batch": (ctypes.c_int, [P, P, P, P, P]),
            "jq_claim_options_create": (P, []),
            "jq_claim_options_destroy": (None, [P]),
            "jq_claim_options_add_job_type": (None, [P, ctypes.c_char_p]),
            "jq_claim_options_set_limit": (None, [P, ctypes.c_int]),
            "jq_pg_claim": (ctypes.c_int, [P, P, ctypes.POINTER(ctypes.POINTER(P)),
                                           ctypes.POINTER(ctypes.c_size_t), P]),
            "jq_pg_leases_free": (None, [ctypes.POINTER(P), ctypes.c_size_t]),
            "jq_pg_complete_many": (ctypes.c_int, [P, ctypes.POINTER(P), P, ctypes.c_size_t,
                                                   P, ctypes.POINTER(ctypes.c_size_t), P]),
        }
        for name, (restype, argtypes) in signatures.items():
            getattr(lib, name).restype = restype
            getattr(lib, name).argtypes = argtypes
        lib.jq_configure_logging(b"warn", None, None, None)

    def check(self, code, err, what):
        if code != 0:
            message = ctypes.cast(err, ctypes.c_char_p).value if err.value else b""
            self.lib.jq_free(err)
            raise RuntimeError(f"{what}: status {code}: {message.decode()}")


def run_c_api(args, c):
    fresh_schema()
    lib = c.lib
    err = ctypes.c_void_p()
    options = lib.jq_pg_options_create()
    lib.jq_pg_options_set_schema(options, SCHEMA.encode())
    queue = ctypes.c_void_p()
    c.check(lib.jq_pg_queue_open(os.environ["DATABASE_URL"].encode(), options,
                                 ctypes.byref(queue), ctypes.byref(err)), err, "open")
    lib.jq_pg_options_destroy(options)
    try:
        c.check(lib.jq_pg_queue_migrate(queue, None, ctypes.byref(err)), err, "migrate")
        start = time.perf_counter()
        batch = lib.jq_pg_batch_create()
        for first in range(0, args.jobs, 1000):
            lib.jq_pg_batch_clear(batch)
            for i in range(first, min(first + 1000, args.jobs)):
                lib.jq_pg_batch_add(batch, b"bench", PAYLOAD.format(i).encode(), None)
            c.check(lib.jq_pg_enqueue_batch(queue, batch, None, None, ctypes.byref(err)), err,
                    "enqueue")
        lib.jq_pg_batch_destroy(batch)
        enqueue = time.perf_counter() - start

        start = time.perf_counter()
        claim = lib.jq_claim_options_create()
        lib.jq_claim_options_add_job_type(claim, b"bench")
        lib.jq_claim_options_set_limit(claim, args.batch)
        done = 0
        while True:
            leases = ctypes.POINTER(ctypes.c_void_p)()
            count = ctypes.c_size_t()
            c.check(lib.jq_pg_claim(queue, claim, ctypes.byref(leases), ctypes.byref(count),
                                    ctypes.byref(err)), err, "claim")
            if count.value == 0:
                break
            lost = ctypes.c_size_t()
            c.check(lib.jq_pg_complete_many(queue, leases, None, count.value, None,
                                            ctypes.byref(lost), ctypes.byref(err)), err,
                    "complete")
            if lost.value:
                raise RuntimeError("leases lost during the benchmark")
            done += count.value
            lib.jq_pg_leases_free(leases, count)
        lib.jq_claim_options_destroy(claim)
        elapsed = time.perf_counter() - start
    finally:
        lib.jq_pg_queue_close(queue)
    if done != args.jobs:
        raise RuntimeError(f"c-api: processed {done} of {args.jobs}")
    return {"enqueue": enqueue, "claim+complete": elapsed}


def run_cpp_worker(args):
    out = subprocess.run([os.path.join(args.build, "benchmarks", "pg_e2e"), "--only", "work",
                          "--jobs", str(args.jobs), "--concurrency", "8", "--batch",
                          str(args.batch), "--dispatchers", "1"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])["seconds"]


def run_python_worker(args):
    fresh_schema()
    with jobqueue.PgQueue(os.environ["DATABASE_URL"], schema=SCHEMA, pool_size=3) as queue:
        queue.migrate()
        for first in range(0, args.jobs, 5000):
            last = min(first + 5000, args.jobs)
            queue.enqueue_many([("bench", {"n": i, "s": "hello world"}) for i in range(first, last)])
        worker = jobqueue.Worker(queue, name="Bench", concurrency=8, batch_size=args.batch,
                                 dispatchers=1, poll_interval=1.0, log_startup=False)
        worker.register("bench", lambda job: None)
        start = time.perf_counter()
        runner = threading.Thread(target=lambda: worker.run(handle_signals=False))
        runner.start()
        while worker.stats.completed < args.jobs:
            time.sleep(0.001)
        elapsed = time.perf_counter() - start
        worker.stop()
        runner.join()
    return elapsed


def delete_bull_keys(pattern):
    subprocess.run(f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern '{pattern}' | "
                   f"xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
                   shell=True, check=True)


def run_cpp_bull_worker(args):
    out = subprocess.run([os.path.join(args.build, "benchmarks", "bull_e2e"), "process",
                          str(args.jobs), "8"], check=True, capture_output=True, text=True).stdout
    delete_bull_keys("bull:bench-process-*")
    return json.loads(out.splitlines()[-1])["seconds"]


def run_python_bull_worker(args):
    name = f"bench-bindings-{os.getpid()}"
    redis = os.environ["REDIS_URL"]
    with jobqueue.BullQueue(redis, name) as queue:
        for _ in range(args.jobs):
            queue.add("noop", {})
    handled = 0
    lock = threading.Lock()

    def noop(job):
        nonlocal handled
        with lock:
            handled += 1
            if handled == args.jobs:
                worker.stop()

    worker = jobqueue.BullWorker(redis, name, noop, concurrency=8)
    start = time.perf_counter()
    stats = worker.run(handle_signals=False)
    elapsed = time.perf_counter() - start
    delete_bull_keys(f"bull:{name}:*")
    if stats.completed != args.jobs:
        raise RuntimeError(f"bull: completed {stats.completed} of {args.jobs}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        sys.exit('bindings_bench: set DATABASE_URL and REDIS_URL (eval "$(scripts/services env)")')
    jobqueue.configure_logging(level="warn")
    library = os.path.join(args.build, "bindings", "c", "libjobqueue_c.so")
    if not os.path.exists(library):
        sys.exit("bindings_bench: build the jobqueue_c, bindings_ref, pg_e2e and bull_e2e "
                 "targets first")
    c_api = CApi(library)

    samples = {}
    for round_number in range(args.rounds):
        for path, run in (("c++", run_cpp), ("python", run_python),
                          ("c-api", lambda a: run_c_api(a, c_api))):
            for phase, seconds in run(args).items():
                samples.setdefault((path, phase), []).append(seconds)
        samples.setdefault(("c++", "worker"), []).append(run_cpp_worker(args))
        samples.setdefault(("python", "worker"), []).append(run_python_worker(args))
        samples.setdefault(("c++", "bull"), []).append(run_cpp_bull_worker(args))
        samples.setdefault(("python", "bull"), []).append(run_python_bull_worker(args))
        print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
    fresh_schema()

    def rate(path, phase):
        return args.jobs / statistics.median(samples[(path, phase)])

    rows = [("enqueue, batches of 1,000", "enqueue"),
            (f"claim {args.batch} + complete {args.batch}", "claim+complete")]
    print(f"{args.jobs} jobs, median of {args.rounds} rounds; jobs/s (ratio to C++)")
    print()
    print("| what | C++ | Python | C API (ctypes) |")
    print("|---|---:|---:|---:|")
    for label, phase in rows:
        cpp, py, c = rate("c++", phase), rate("python", phase), rate("c-api", phase)
        print(f"| {label} | {cpp:,.0f} | {py:,.0f} ({py / cpp:.2f}x) | {c:,.0f} ({c / cpp:.2f}x) |")
    total = {p: args.jobs / (statistics.median(samples[(p, "enqueue")]) +
                             statistics.median(samples[(p, "claim+complete")]))
             for p in ("c++", "python", "c-api")}
    print(f"| enqueue + claim + complete | {total['c++']:,.0f} | {total['python']:,.0f} "
          f"({total['python'] / total['c++']:.2f}x) | {total['c-api']:,.0f} "
          f"({total['c-api'] / total['c++']:.2f}x) |")
    cpp, py = rate("c++", "worker"), rate("python", "worker")
    print(f"| Postgres worker, no-op handler, concurrency 8, batch {args.batch} | {cpp:,.0f} | "
          f"{py:,.0f} ({py / cpp:.2f}x) | |")
    cpp, py = rate("c++", "bull"), rate("python", "bull")
    print(f"| BullMQ worker, no-op handler, concurrency 8 | {cpp:,.0f} | "
          f"{py:,.0f} ({py / cpp:.2f}x) | |")


if __name__ == "__main__":
    main()
