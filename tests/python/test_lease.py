"""The lease context manager and fencing of leases from Python."""

import pytest

import jobqueue


def test_with_lease_completes_with_result(queue):
    added = queue.enqueue("ingest_csv", {"file": "a.csv"})
    with queue.claim("ingest_csv")[0] as lease:
        lease.result = {"rows": 12}
    assert lease.finished
    job = queue.get(added.id)
    assert job.status == "completed" and job.result == {"rows": 12}


def test_with_lease_fails_with_exception_text(queue):
    added = queue.enqueue("ingest_csv", {"file": "bad.csv"}, max_attempts=1)
    with pytest.raises(KeyError):
        with queue.claim("ingest_csv")[0] as lease:
            raise KeyError("header 'amount' missing")
    assert lease.finished
    job = queue.get(added.id)
    assert job.status == "failed"
    assert job.last_error == "KeyError: \"header 'amount' missing\""


def test_with_lease_retries_when_attempts_remain(queue):
    added = queue.enqueue("t", max_attempts=3)
    with pytest.raises(RuntimeError):
        with queue.claim("t")[0]:
            raise RuntimeError("transient")
    job = queue.get(added.id)
    assert job.status == "pending" and job.attempts == 1 and job.last_error == "RuntimeError: transient"


def test_with_lease_leaves_explicit_outcome_alone(queue):
    first = queue.enqueue("t")
    second = queue.enqueue("t")
    leases = queue.claim("t", limit=2)
    with leases[0] as lease:
        lease.release()
    with leases[1] as lease:
        lease.complete("done early")
        lease.result = "ignored"
    assert queue.get(first.id).status == "pending"
    assert queue.get(second.id).result == "done early"


def test_lost_lease_is_fenced_off(queue):
    added = queue.enqueue("t")
    stale = queue.claim("t")[0]
    stale.release()
    fresh = queue.claim("t", worker_id="another-worker")[0]
    assert fresh.attempt == 1 and fresh.id == added.id
    for call in (stale.complete, stale.heartbeat, stale.release, lambda: stale.fail("x")):
        with pytest.raises(jobqueue.LeaseLostError, match="lease lost on job") as raised:
            call()
        assert raised.value.code == "ABORTED"
    # The `with` block of a lost lease does not write either.
    fresh.complete({"by": "fresh"})
    assert queue.get(added.id).result == {"by": "fresh"}


def test_with_lost_lease_keeps_the_original_exception(queue, sql, schema):
    added = queue.enqueue("t")
    lease = queue.claim("t")[0]
    # What the stale-lock reaper does to a lease it recovers.
    sql(f"UPDATE \"{schema}\".job_queue SET status = 'pending', locked_by = NULL WHERE id = {added.id}")
    # Recording the failure is refused (lost lease); the block's own error still surfaces.
    with pytest.raises(ZeroDivisionError):
        with lease:
            1 / 0
    job = queue.get(added.id)
    assert job.status == "pending" and job.last_error is None


def test_job_gone_is_not_found(queue, sql, schema):
    added = queue.enqueue("t")
    lease = queue.claim("t")[0]
    sql(f'DELETE FROM "{schema}".job_queue WHERE id = {added.id}')
    with pytest.raises(jobqueue.NotFoundError, match="does not exist"):
        lease.complete()
    assert lease.finished


class Undescribable(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


def test_with_lease_fails_the_job_when_str_of_the_exception_raises(queue):
    # Describing the exception must not replace it, nor leave the job processing.
    failed = queue.enqueue("t", max_attempts=1)
    with pytest.raises(Undescribable):
        with queue.claim("t")[0] as lease:
            raise Undescribable()
    assert lease.finished
    job = queue.get(failed.id)
    assert job.status == "failed" and job.attempts == 1
    assert job.last_error == "Undescribable: <exception str() failed>"
    # With attempts left, the attempt is failed and the job retried.
    retried = queue.enqueue("t", max_attempts=3)
    with pytest.raises(Undescribable):
        with queue.claim("t")[0]:
            raise Undescribable()
    job = queue.get(retried.id)
    assert job.status == "pending" and job.attempts == 1 and job.locked_by is None
    assert job.last_error == "Undescribable: <exception str() failed>"
