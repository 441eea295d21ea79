"""Config from Python: sources, scopes, secrets that never print, exit codes."""

import os

import pytest

import jobqueue

DB = "postgresql://app:s3cret-pw@db.internal:5432/app"


def test_load_from_environ_and_env_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text("WORKER_POLL_INTERVAL=2.5\nINGEST_BUCKET=uploads\nLOG_LEVEL=debug\n")
    env.chmod(0o600)
    (tmp_path / ".env.ingest").write_text("INGEST_BUCKET=ingest-only\n")
    (tmp_path / ".env.ingest").chmod(0o600)
    config = jobqueue.Config.load("ingest", env_dir=str(tmp_path),
                                  environ={"DATABASE_URL": DB, "ENVIRONMENT": "staging"})
    assert config.service == "ingest"
    assert config.environment == "staging"
    assert config.supabase_mode == "unset"
    assert config.poll_interval == 2.5
    assert config.log_level == "debug"
    assert config.get("INGEST_BUCKET") == "ingest-only"
    assert config.get("NOPE") is None
    assert config.database_url_source == "DATABASE_URL"
    assert config.warnings == []


def test_secrets_never_print():
    config = jobqueue.Config.load("worker", load_env_files=False, environ={"DATABASE_URL": DB})
    url = config.database_url
    assert isinstance(url, jobqueue.Secret)
    for text in (str(url), repr(url), repr(config), f"{url}"):
        assert "s3cret-pw" not in text
    assert "****" in str(url)
    assert url.reveal() == DB
    assert config.get_secret("DATABASE_URL").reveal() == DB
    assert url == jobqueue.Secret(DB) and url != jobqueue.Secret("other")
    # Compared with anything else: unequal, not a TypeError.
    assert url != None and url not in ("", None)  # noqa: E711
    assert not config.redis_url
    with pytest.raises(jobqueue.NotFoundError):
        config.get_secret("REDIS_URL")


def test_scope_violation_warns_in_dev_and_refuses_in_prod():
    environ = {"DATABASE_URL": DB, "JUDIT_API_KEY": "k-123"}
    config = jobqueue.Config.load("api", load_env_files=False, environ=environ)
    assert config.scope_violations == ["JUDIT_API_KEY"]
    with pytest.raises(jobqueue.PermissionDeniedError, match="JUDIT_API_KEY"):
        config.get_secret("JUDIT_API_KEY")
    with pytest.raises(jobqueue.PermissionDeniedError) as raised:
        jobqueue.Config.load("api", load_env_files=False, environ={**environ, "ENVIRONMENT": "prod"})
    assert "JUDIT_API_KEY" in str(raised.value) and "k-123" not in str(raised.value)
    assert jobqueue.exit_code_for(raised.value) == jobqueue.EXIT_SCOPE_VIOLATION == 77


def test_bad_values_are_reported_together():
    with pytest.raises(jobqueue.InvalidArgumentError) as raised:
        jobqueue.Config.load("worker", load_env_files=False,
                             environ={"LOG_LEVEL": "loud", "WORKER_POLL_INTERVAL": "-1",
                                      "DATABASE_URL": "mysql://x"})
    message = str(raised.value)
    for name in ("LOG_LEVEL", "WORKER_POLL_INTERVAL", "DATABASE_URL"):
        assert name in message
    assert jobqueue.exit_code_for(raised.value) == jobqueue.EXIT_CONFIG_ERROR == 78
    with pytest.raises(jobqueue.InvalidArgumentError, match="service"):
        jobqueue.Config.load("")


def test_queue_from_config(schema):
    config = jobqueue.Config.load("worker", load_env_files=False,
                                  environ={"DATABASE_URL": os.environ["DATABASE_URL"]})
    with jobqueue.PgQueue(config, schema=schema) as q:
        assert q.migrate() >= 1
    no_db = jobqueue.Config.load("cli", load_env_files=False, environ={})
    with pytest.raises(jobqueue.FailedPreconditionError, match="no database configured"):
        jobqueue.PgQueue(no_db)
    with pytest.raises(jobqueue.FailedPreconditionError, match="REDIS_URL"):
        jobqueue.BullQueue(no_db, "q")
