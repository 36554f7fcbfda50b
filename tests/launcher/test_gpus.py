"""The local runner counts this machine's GPUs without torch and refuses --gpu-index numbers it lacks."""

from __future__ import annotations

import os

import pytest

from tao_launcher.errors import UsageError
from tao_launcher.launcher import gpus


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with no NVIDIA driver, no nvidia-smi and no ROCm, until a test adds one."""
    monkeypatch.setattr(gpus, "NVIDIA_GPUS", tmp_path / "proc-driver-nvidia-gpus")
    monkeypatch.setattr(gpus, "ROCM_DEVICE", tmp_path / "kfd")
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path


def fake_nvidia_smi(machine, script: str) -> None:
    smi = machine / "bin" / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{script}\n")
    os.chmod(smi, 0o755)


def test_gpus_are_counted_from_the_driver_then_nvidia_smi_and_unknown_only_on_rocm(machine):
    assert gpus.host_gpus() == 0
    fake_nvidia_smi(machine, "echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'; echo '  MIG 1g.10gb Device 0:'; "
                             "echo 'GPU 1: NVIDIA H100 (UUID: GPU-2)'")
    assert gpus.host_gpus() == 2
    fake_nvidia_smi(machine, "echo 'NVIDIA-SMI has failed because it could not communicate with the driver'; exit 9")
    assert gpus.host_gpus() == 0
    for bus in ("0000:17:00.0", "0000:65:00.0", "0000:ca:00.0"):
        (machine / "proc-driver-nvidia-gpus" / bus).mkdir(parents=True)
    assert gpus.host_gpus() == 3   # the driver's own list wins, and costs no process
    (machine / "bin" / "nvidia-smi").unlink()
    for bus in (machine / "proc-driver-nvidia-gpus").iterdir():
        bus.rmdir()
    (machine / "proc-driver-nvidia-gpus").rmdir()
    (machine / "kfd").touch()
    assert gpus.host_gpus() is None


@pytest.mark.parametrize("count, ids, message", [
    (0, ["0", "1"], "GPUs 0,1 were asked for, but this machine has no GPU: drop --gpu-index to run on the CPU "
                    "(-g N runs N CPU processes)"),
    (1, ["1"], "GPUs 1 were asked for, but this machine has 1 GPU, numbered 0: pass --gpu-index numbers below 1"),
    (2, ["0", "2"], "GPUs 0,2 were asked for, but this machine has 2 GPUs, numbered 0 to 1: pass --gpu-index "
                    "numbers below 2 (nvidia-smi -L lists them)"),
])
def test_numbered_gpus_this_machine_lacks_are_refused_in_one_sentence(count, ids, message):
    with pytest.raises(UsageError) as refused:
        gpus.check_local_gpus("train", ids, count)
    assert str(refused.value).startswith(message)


def test_what_can_be_had_or_cannot_be_counted_or_needs_no_gpu_is_let_through(monkeypatch):
    gpus.check_local_gpus("train", ["0", "1"], 2)
    monkeypatch.setattr(gpus, "host_gpus", lambda: None)
    gpus.check_local_gpus("train", ["7"])                  # uncountable (ROCm): the subtask finds out
    gpus.check_local_gpus("dataset_convert", ["7"], 0)     # never uses a GPU, as with the Docker runner
    gpus.check_local_gpus("train", [], 0)                  # -g N alone: N CPU processes where there is no GPU
