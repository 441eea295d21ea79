"""Runs every ```python block of docs/python.md, each as its own program, against the local
servers: the documentation's examples are tested like the code."""

import os
import re
import subprocess

import pytest

from conftest import psql

DOC = os.path.join(os.environ.get("JOBQUEUE_SOURCE_DIR", "../.."), "docs", "python.md")


def python_blocks():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(pytest.param(match.group(1), id=f"python.md:{line}"))
    return blocks


BLOCKS = python_blocks()


def bull_queue_names():
    """The BullMQ queues the blocks use (the second argument of BullQueue/BullWorker)."""
    with open(DOC, encoding="utf-8") as f:
        return set(re.findall(r"Bull(?:Queue|Worker)\([^,]+,\s*\"([^\"]+)\"", f.read()))


def reset_servers():
    # The examples use the default schema "ops", which no other test uses.
    psql("DROP SCHEMA IF EXISTS ops CASCADE")
    for name in bull_queue_names():
        subprocess.run(
            f"redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:{name}:*' | "
            f"xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
            shell=True, check=True)


@pytest.fixture
def clean_servers(database_url, redis_url):
    reset_servers()
    yield
    reset_servers()


def test_the_page_has_examples_of_every_part():
    code = "\n".join(p.values[0] for p in BLOCKS)
    assert len(BLOCKS) >= 6
    for name in ("PgQueue", "Worker(", "BullQueue", "BullWorker", "Config.load",
                 "UnrecoverableError", "LeaseLostError", "with lease"):
        assert name in code, name
    assert {"emails", "thumbnails"} <= bull_queue_names()


@pytest.mark.parametrize("code", BLOCKS)
def test_python_block(code, python, tmp_path, clean_servers):
    env = dict(os.environ, LOG_LEVEL="warn")
    result = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
