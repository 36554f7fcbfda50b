"""GPUs asked for by number (``--gpu-index``, ``DockerOptions.gpu_ids``): whether they can be had, said one way.

Where the run goes decides who can tell: the Docker runner asks the engine (``fit_to_engine``: an engine
without the NVIDIA runtime has none), the local runner counts this machine's GPUs before it starts the
subtask (``check_local_gpus``). Both refuse with ``gpus_not_here``'s sentence. ``-g N`` is a count, not a
name: where there is no GPU it runs N CPU processes (README), so only numbered GPUs are checked here; the
trainer refuses a count above the GPUs it sees.

Counting imports no torch (the host side must not): ``/proc/driver/nvidia/gpus`` holds one folder per GPU
wherever the NVIDIA driver is loaded (in a GPU container, only the container's GPUs); where it is absent
(WSL), ``nvidia-smi -L`` lists them; with neither there is no NVIDIA driver, so CUDA sees no GPU. An AMD
ROCm machine (``/dev/kfd``), or an ``nvidia-smi`` that hangs, cannot be counted cheaply: nothing is refused.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from tao_launcher.errors import UsageError

NO_ACCELERATOR = {"download_specs", "dataset_convert"}   # subtasks that never use a GPU
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
ROCM_DEVICE = Path("/dev/kfd")
NVIDIA_SMI_TIMEOUT_S = 20


def gpus_not_here(ids: Sequence[str], where: str, fix: str) -> UsageError:
    """The one sentence for GPUs asked for by number that this run cannot have: ``where`` says why."""
    return UsageError(f"GPUs {','.join(ids)} were asked for, but {where}: {fix}")


def host_gpus() -> Optional[int]:
    """How many NVIDIA GPUs this machine has (see the module docstring), or None where it cannot tell."""
    if NVIDIA_GPUS.is_dir():
        return sum(1 for _ in NVIDIA_GPUS.iterdir())
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return None
        # a failing nvidia-smi cannot reach the driver, and then neither can CUDA
        return sum(line.startswith("GPU ") for line in listed.stdout.splitlines()) if listed.returncode == 0 else 0
    return None if ROCM_DEVICE.exists() else 0


def check_local_gpus(subtask: str, gpu_ids: Sequence[str], count: Optional[int] = None) -> None:
    """Refuse ``--gpu-index`` numbers this machine has no GPU for (``count``: its GPUs, counted when None)."""
    if not gpu_ids or subtask in NO_ACCELERATOR:
        return
    count = host_gpus() if count is None else count
    if count is None or all(int(i) < count for i in gpu_ids):
        return
    if count == 0:
        raise gpus_not_here(gpu_ids, "this machine has no GPU",
                            "drop --gpu-index to run on the CPU (-g N runs N CPU processes)")
    numbered = "0" if count == 1 else f"0 to {count - 1}"
    raise gpus_not_here(gpu_ids, f"this machine has {count} GPU{'s' if count > 1 else ''}, numbered {numbered}",
                        f"pass --gpu-index numbers below {count} (nvidia-smi -L lists them)")
