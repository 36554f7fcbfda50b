"""The suite runs in a HOME of its own: a developer's ~/.tao_mounts.json, ~/.tao/config.json or
TAO_* settings reach no test (conftest.pytest_configure)."""

import os
from pathlib import Path

import conftest


def test_home_is_the_sessions_own():
    real = os.environ.get("TAO_TEST_REAL_HOME")
    assert conftest.SESSION_HOME is not None and Path.home() == conftest.SESSION_HOME
    assert str(Path.home()) != real
    assert conftest.tao_env()["HOME"] == str(conftest.SESSION_HOME)   # and so does every `tao` a test starts
    assert not (Path.home() / ".tao_mounts.json").exists()
    assert not [k for k in os.environ if k.startswith("TAO_") and k not in conftest.KEEP_TAO_ENV]


def test_tao_sees_no_mounts_file_of_the_developer(tmp_path):
    proc = conftest.tao("info", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"mounts file: {conftest.SESSION_HOME / '.tao_mounts.json'} (not found)" in proc.stdout
