"""Suite-wide test settings."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import torch

# The suite runs on 2 pytest-xdist workers on 2 cores: one intra-op thread per worker avoids
# oversubscription, which makes tiny CPU convolutions two orders of magnitude slower.
torch.set_num_threads(1)


# --- PostgreSQL for the flow store and service tests ------------------------------------------
# `pg_url` is one throwaway cluster per pytest process (per xdist worker: each gets its own
# directory and an OS-chosen free port, so two workers never share either), started lazily by
# the first test that needs it. FIELDVISION_TEST_PG_URL points the suite at an existing server
# instead; its user needs CREATEDB, because every test gets a fresh database (`fresh_pg_url`).

_PG_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pg_throwaway.sh"


def _pg_binaries_present() -> bool:
    if os.environ.get("PG_BIN"):
        return os.access(Path(os.environ["PG_BIN"]) / "initdb", os.X_OK)
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("initdb") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url():
    """URL of a PostgreSQL database whose user may create databases."""
    if os.environ.get("FIELDVISION_TEST_PG_URL"):
        yield os.environ["FIELDVISION_TEST_PG_URL"]
        return
    if not _pg_binaries_present():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql "
            "(make test does) or set FIELDVISION_TEST_PG_URL"
        )
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = Path(tempfile.mkdtemp(prefix=f"fv-pg-{worker}-"))
    base.chmod(0o755)  # the server runs as `postgres` when the suite runs as root
    cluster = base / "cluster"
    env = {**os.environ, "PG_FSYNC": "off"}  # deleted afterwards: durability buys nothing
    for _ in range(3):  # the port may be taken between choosing and binding it
        port = str(_free_port())
        proc = subprocess.run(
            [str(_PG_SCRIPT), "start", str(cluster), port],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode == 0:
            break
        subprocess.run([str(_PG_SCRIPT), "stop", str(cluster), port], capture_output=True)
    else:
        pytest.fail(f"cannot start a throwaway PostgreSQL: {proc.stderr.strip()}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            [str(_PG_SCRIPT), "stop", str(cluster), port], capture_output=True, timeout=120
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_pg_url(pg_url):
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"fv_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(pg_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
