"""pytest fixtures shared by every integration case."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def pg():
    """One throwaway PostgreSQL cluster for the session; cases createdb()."""
    cluster = harness.Pg("pg").start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def tmpdir_w(request):
    """A per-case temp dir that nginx workers (nobody) may write to."""
    path = harness.make_tempdir(request.node.name[:40])
    yield path
    harness.remove_tempdir(path)
