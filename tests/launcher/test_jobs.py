"""`tao list` and `tao stop` for local runs: the job record, a killed run reported as dead.

No engine needed (DOCKER_HOST points nowhere: the Docker part says so and is skipped).
The kill -9 test trains on the packaged sample for a few seconds (about 15 s in all).
"""

import json
import os
import signal
import socket
import subprocess
import time

from conftest import TAO, train_args, wait_until
from launcher_helpers import clean_env, output, tao  # noqa: F401

NO_ENGINE = "unix:///nonexistent/docker.sock"


def rows(proc) -> list:
    assert proc.returncode == 0, output(proc)
    return [line.split() for line in proc.stdout.splitlines()[1:]]


def test_a_record_whose_launcher_died_lists_as_dead_and_stop_forgets_it(tao, tmp_path):
    env = clean_env(tao.home, DOCKER_HOST=NO_ENGINE)
    results = tmp_path / "results"
    results.mkdir()
    (results / "status.json").write_text(json.dumps({"task": "text_classification", "subtask": "train",
                                                     "state": "running", "started": "2026-12-02T07:00:00+00:00"}))
    gone = subprocess.Popen(["true"])
    gone.wait()                        # a pid that no longer runs
    records = tao.home / ".tao" / "jobs"
    records.mkdir(parents=True)
    (records / f"local-{gone.pid}.json").write_text(json.dumps({
        "pid": gone.pid, "host": socket.gethostname(), "task": "text_classification", "subtask": "train",
        "results": str(results), "started": "2026-12-02T06:59:59Z"}))
    listed = tao("list", env=env)
    assert rows(listed) == [[f"local-{gone.pid}", "text_classification", "train", "2026-12-02T06:59:59Z", "dead",
                             str(results)]]
    assert "Docker jobs are not shown: no Docker Engine answers" in listed.stderr
    stop = tao("stop", f"local-{gone.pid}", env=env)
    assert stop.returncode == 0 and f"forgot dead job local-{gone.pid}" in stop.stdout, output(stop)
    assert rows(tao("list", env=env)) == []
    unknown = tao("stop", "local-1", env=env)
    assert unknown.returncode == 2 and "no local tao job 'local-1'" in unknown.stderr, output(unknown)


def test_kill_9_of_a_local_launcher_shows_the_job_dead(tao, tmp_path, sample_data):
    env = clean_env(tao.home, DOCKER_HOST=NO_ENGINE)
    results = tmp_path / "long"
    proc = subprocess.Popen(TAO + [str(a) for a in train_args(sample_data, results, "trainer.max_epochs=50")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job = f"local-{proc.pid}"
        running = wait_until(lambda: [r for r in rows(tao("list", env=env)) if r[0] == job and r[4] == "running"],
                             proc, "the local job in tao list", timeout=120)
        assert running[0][1:3] == ["text_classification", "train"] and running[0][5] == str(results)
        wait_until(lambda: (results / "status.json").exists(), proc, "status.json", timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20   # the subtask dies with its launcher (parent-death signal)
        while [r[4] for r in rows(tao("list", env=env)) if r[0] == job] != ["dead"]:
            assert time.monotonic() < deadline, tao("list", env=env).stdout
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert tao("stop", "--all", env=env).returncode == 0
    assert rows(tao("list", env=env)) == []
    assert not os.listdir(tao.home / ".tao" / "jobs")
