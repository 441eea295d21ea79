"""PgQueue from Python: enqueue (single, batch, options), claim, complete, fail, counts."""

import datetime
import json

import pytest

import jobqueue


def test_enqueue_claim_complete(queue):
    added = queue.enqueue("ingest_csv", {"file": "upload-1.csv", "n": [1, 2, 3]})
    assert added.inserted
    assert int(added) == added.id > 0
    job = queue.get(added.id)
    assert job.status == "pending"
    assert job.payload == {"file": "upload-1.csv", "n": [1, 2, 3]}
    assert job.attempts == 0 and job.max_attempts == 5
    assert job.locked_by is None and job.result is None and job.finished_at is None

    leases = queue.claim("ingest_csv", limit=10)
    assert len(leases) == 1
    lease = leases[0]
    assert (lease.id, lease.job_type, lease.queue, lease.attempt) == (added.id, "ingest_csv", "default", 1)
    assert lease.payload["file"] == "upload-1.csv"
    assert json.loads(lease.payload_json) == lease.payload
    assert lease.worker_id == queue.worker_id
    assert queue.get(added.id).status == "processing"
    lease.heartbeat()
    lease.complete({"rows": 3, "ok": True, "name": "naïve ✓"})
    assert lease.finished
    job = queue.get(added.id)
    assert job.status == "completed"
    assert job.result == {"rows": 3, "ok": True, "name": "naïve ✓"}
    assert isinstance(job.finished_at, datetime.datetime)
    assert job.finished_at.tzinfo is not None


def test_payload_default_and_types(queue):
    ids = [queue.enqueue("t").id, queue.enqueue("t", [1, "two", None]).id,
           queue.enqueue("t", "text").id, queue.enqueue("t", 42).id]
    assert [queue.get(i).payload for i in ids] == [{}, [1, "two", None], "text", 42]


def test_options(queue):
    low = queue.enqueue("t", {"n": "low"}, priority=5, max_attempts=2)
    high = queue.enqueue("t", {"n": "high"}, priority=-5)
    later = queue.enqueue("t", {"n": "later"}, delay=3600)
    at = queue.enqueue("t", {"n": "at"},
                       run_at=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2))
    other = queue.enqueue("t", {"n": "other"}, queue="reports")
    assert queue.get(low.id).max_attempts == 2
    assert queue.get(high.id).priority == -5
    job = queue.get(later.id)
    assert job.run_at > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=59)
    assert queue.get(at.id).run_at > job.run_at
    assert queue.get(other.id).queue == "reports"
    # Priority first; delayed jobs are not due; other queues are not claimed.
    leases = queue.claim("t", limit=10)
    assert [lease.payload["n"] for lease in leases] == ["high", "low"]
    assert [lease.payload["n"] for lease in queue.claim("t", queue="reports")] == ["other"]


def test_timedelta_delay(queue):
    added = queue.enqueue("t", delay=datetime.timedelta(minutes=10))
    assert queue.get(added.id).run_at > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=9)


def test_dedupe_key(queue):
    first = queue.enqueue("report", {"case": 7}, dedupe_key="case-7")
    second = queue.enqueue("report", {"case": 7}, dedupe_key="case-7")
    assert first.inserted and not second.inserted
    assert second.id == first.id
    assert queue.get(first.id).dedupe_key == "case-7"
    # Once finished, the key is free again.
    queue.claim("report")[0].complete()
    third = queue.enqueue("report", {"case": 7}, dedupe_key="case-7")
    assert third.inserted and third.id != first.id


def test_enqueue_many(queue):
    results = queue.enqueue_many(
        [("row", {"i": i}) for i in range(5)]
        + [jobqueue.NewJob("row", {"i": 5}, priority=-1, max_attempts=1),
           "bare", ("bare2",)],
        max_attempts=3)
    assert len(results) == 8
    ids = [r.id for r in results]
    assert ids == sorted(ids) and all(r.inserted for r in results)
    assert queue.get(ids[0]).max_attempts == 3
    assert queue.get(ids[5]).max_attempts == 1 and queue.get(ids[5]).priority == -1
    assert queue.get(ids[6]).job_type == "bare" and queue.get(ids[6]).payload == {}
    assert queue.enqueue_many([]) == []
    assert queue.count(job_type="row") == 6


def test_enqueue_many_all_or_nothing(queue):
    with pytest.raises(jobqueue.InvalidArgumentError, match="job type"):
        queue.enqueue_many([("ok", {}), ("not ok!", {})])
    # A job type must be a str: None and 42 are not turned into "None" and "42".
    for bad in (None, 42):
        with pytest.raises(TypeError, match="job type must be str"):
            queue.enqueue_many([("ok", {}), (bad, {})])
    assert queue.count() == 0


def test_fail_and_retry(queue):
    added = queue.enqueue("flaky", max_attempts=2)
    lease = queue.claim("flaky")[0]
    outcome = lease.fail("ValueError: row 3 is broken", retry_delay=0)
    assert outcome.will_retry and outcome.attempts == 1
    assert isinstance(outcome.retry_at, datetime.datetime)
    job = queue.get(added.id)
    assert job.status == "pending" and job.last_error == "ValueError: row 3 is broken"
    lease = queue.claim("flaky")[0]
    assert lease.attempt == 2
    outcome = queue.fail(lease, "still broken")
    assert not outcome.will_retry and outcome.retry_at is None
    assert queue.get(added.id).status == "failed"
    assert queue.retry_failed("flaky") == 1
    assert queue.get(added.id).status == "pending"


def test_fail_uses_backoff(queue):
    added = queue.enqueue("flaky")
    outcome = queue.claim("flaky")[0].fail("boom")
    # retry_base_delay 1 s, no jitter (the fixture's queue)
    assert outcome.will_retry
    assert queue.get(added.id).run_at > datetime.datetime.now(datetime.timezone.utc)
    assert queue.claim("flaky") == []


def test_release_and_cancel(queue):
    first = queue.enqueue("t")
    lease = queue.claim("t")[0]
    lease.release()
    assert lease.finished
    job = queue.get(first.id)
    assert job.status == "pending" and job.attempts == 0
    queue.cancel(first.id)
    assert queue.get(first.id).status == "cancelled"
    with pytest.raises(jobqueue.FailedPreconditionError, match="cancelled"):
        queue.cancel(first.id)


def test_complete_many(queue):
    queue.enqueue_many([("bulk", {"i": i}) for i in range(50)])
    leases = queue.claim("bulk", limit=100)
    assert len(leases) == 50
    lost = queue.complete_many(leases[:25], [{"i": lease.payload["i"]} for lease in leases[:25]])
    assert lost == []
    assert all(lease.finished for lease in leases[:25])
    assert queue.get(leases[3].id).result == {"i": 3}
    # Completing again: every lease is reported lost, nothing changes.
    assert sorted(queue.complete_many(leases[:3])) == sorted(l.id for l in leases[:3])
    assert queue.complete_many(leases[25:]) == []
    assert queue.count(job_type="bulk", status="completed") == 50
    with pytest.raises(jobqueue.InvalidArgumentError, match="2 leases but 1 results"):
        queue.complete_many(leases[:2], [None])


def test_complete_many_checks_every_result_before_writing(queue):
    # Two owners take two round trips; a result jsonb refuses in the second must not leave
    # the first written.
    for _ in range(2):
        queue.enqueue("owned")
    (a,) = queue.claim("owned", worker_id="a")
    (b,) = queue.claim("owned", worker_id="b")
    with pytest.raises(jobqueue.InvalidArgumentError, match="u0000"):
        queue.complete_many([a, b], [{"ok": 1}, "bad\u0000"])
    with pytest.raises(jobqueue.InvalidArgumentError, match="limit"):
        queue.complete_many([a, b], [{"ok": 1}, "x" * (16 * 1024 * 1024)])
    assert queue.get(a.id).status == "processing" and not a.finished
    assert queue.get(b.id).status == "processing" and not b.finished
    assert queue.complete_many([a, b], [{"ok": 1}, "fine"]) == []
    assert a.finished and b.finished
    assert queue.get(a.id).result == {"ok": 1} and queue.get(b.id).result == "fine"


def test_counts(queue):
    queue.enqueue_many([("a", {})] * 3 + [("b", {})] * 2)
    queue.claim("a")[0].complete()
    counts = {(c.job_type, c.status): c.count for c in queue.counts()}
    assert counts == {("a", "pending"): 2, ("a", "completed"): 1, ("b", "pending"): 2}
    assert all(c.queue == "default" for c in queue.counts())
    assert queue.count() == 5
    assert queue.count(status="pending") == 4
    assert queue.count(job_type="a", status="pending") == 2
    assert queue.count(queue="elsewhere") == 0


def test_claim_any_type_and_worker_id(queue):
    queue.enqueue("x")
    queue.enqueue("y")
    leases = queue.claim(limit=5, worker_id="py-test:1")
    assert sorted(l.job_type for l in leases) == ["x", "y"]
    assert {l.worker_id for l in leases} == {"py-test:1"}
    assert queue.get(leases[0].id).locked_by == "py-test:1"


def test_queue_context_manager_closes(database_url, schema):
    with jobqueue.PgQueue(database_url, schema=schema) as q:
        with pytest.raises(jobqueue.FailedPreconditionError):
            q.schema_version()
        version = q.migrate()
        assert version >= 2 and q.schema_version() == version
        assert q.schema == schema
        assert not q.closed
    assert q.closed
    with pytest.raises(jobqueue.FailedPreconditionError, match="closed"):
        q.enqueue("t")


def test_pool_options(database_url, schema, sql):
    name = f"py_at_open_{schema}"
    with jobqueue.PgQueue(database_url, schema=schema, pool_size=3, connections_at_open=3,
                          application_name=name, max_enqueue_statements=0,
                          migrate_lock_timeout=datetime.timedelta(seconds=2),
                          held_batch_idle_timeout=30) as q:
        # The pool was opened whole before the constructor returned.
        assert sql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'") == "3"
        q.migrate()
        assert q.enqueue("t").inserted
    for kwargs, field in [
            (dict(pool_size=2, connections_at_open=3), "connections_at_open"),
            (dict(max_enqueue_statements=-1), "max_enqueue_statements"),
            (dict(migrate_lock_timeout=0), "migrate_lock_timeout"),
            (dict(held_batch_idle_timeout=0.5), "held_batch_idle_timeout")]:
        with pytest.raises(jobqueue.InvalidArgumentError, match=field):
            jobqueue.PgQueue(database_url, schema=schema, **kwargs)


def test_delete_completed(database_url, schema, sql):
    with jobqueue.PgQueue(database_url, schema=schema, delete_completed=True) as q:
        q.migrate()
        done, failing = q.enqueue("t").id, q.enqueue("t").id
        first, second = q.claim("t", limit=2)
        first.complete({"ok": True})
        second.fail("boom")
        with pytest.raises(jobqueue.NotFoundError):
            q.get(done)
        assert q.get(failing).status == "pending"
        assert sql(f"SELECT count(*) FROM {schema}.job_queue") == "1"
    with pytest.raises(TypeError, match="delete_completed"):
        jobqueue.PgQueue(database_url, schema=schema, delete_completed="yes")


def test_lease_outlives_closed_queue(database_url, schema):
    q = jobqueue.PgQueue(database_url, schema=schema)
    q.migrate()
    added = q.enqueue("t")
    lease = q.claim("t")[0]
    q.close()
    # The lease keeps the pool it came from.
    lease.complete({"late": True})
    with jobqueue.PgQueue(database_url, schema=schema) as again:
        assert again.get(added.id).result == {"late": True}


def test_stale_recover_and_purge(queue, schema):
    from conftest import psql

    stuck = queue.enqueue("ingest_csv", max_attempts=3)
    spent = queue.enqueue("ingest_csv", max_attempts=1)
    queue.claim("ingest_csv", limit=2, worker_id="vanished")
    # The worker vanished two hours ago: its heartbeats stopped then.
    psql(f"UPDATE \"{schema}\".job_queue SET heartbeat_at = now() - interval '2 hours'")
    assert queue.stale(older_than=datetime.timedelta(hours=3)) == []
    listed = sorted(queue.stale(), key=lambda j: j.id)
    assert [j.id for j in listed] == [stuck.id, spent.id]
    assert listed[0].locked_by == "vanished" and listed[0].heartbeat_age > 7000
    moved = {j.id: j for j in queue.recover_stale(3600)}
    assert moved[stuck.id].new_status == "pending"
    assert moved[spent.id].new_status == "failed"
    assert moved[stuck.id].previous_owner == "vanished"
    assert queue.get(stuck.id).status == "pending"
    assert queue.recover_stale(3600) == []
    with pytest.raises(jobqueue.InvalidArgumentError):
        queue.recover_stale(3600, batch_size=0)
    # A type known to run long without heartbeats gets its own, longer threshold.
    slow = queue.enqueue("slow_export")
    quick = queue.enqueue("quick_task")
    queue.claim(["slow_export", "quick_task"], limit=2, worker_id="vanished")
    psql(f"UPDATE \"{schema}\".job_queue SET heartbeat_at = now() - interval '2 hours'"
         " WHERE status = 'processing'")
    moved = queue.recover_stale(3600, stale_after_by_type={"slow_export": 3 * 3600})
    assert [j.id for j in moved] == [quick.id]
    assert queue.get(slow.id).status == "processing"
    with pytest.raises(jobqueue.InvalidArgumentError):
        queue.recover_stale(3600, stale_after_by_type={"slow_export": -1})

    psql(f"UPDATE \"{schema}\".job_queue SET finished_at = now() - interval '40 days'"
         f" WHERE id = {spent.id}")
    assert queue.purge(failed_older_than=datetime.timedelta(days=41)) == 0
    assert queue.purge() == 1
    with pytest.raises(jobqueue.NotFoundError):
        queue.get(spent.id)
    assert queue.get(stuck.id).status == "pending"
