"""Helpers shared by the launcher tests: the `tao` fixture, a clean environment, readable output."""

from pathlib import Path

import pytest

import conftest


def clean_env(home: Path, **extra) -> dict:
    return conftest.tao_env(home, PYTHONDONTWRITEBYTECODE="1", **extra)


@pytest.fixture
def tao(tmp_path):
    """Run `tao ARGS...` in tmp_path with HOME=tmp_path/home; returns the CompletedProcess."""
    home = tmp_path / "home"
    home.mkdir()

    def run(*args, env=None, timeout=60):
        return conftest.tao(*args, env=env or clean_env(home), timeout=timeout, cwd=tmp_path)

    run.home = home
    return run


def output(proc) -> str:
    return proc.stdout + proc.stderr


def assert_no_traceback(proc):
    assert "Traceback" not in output(proc), output(proc)
