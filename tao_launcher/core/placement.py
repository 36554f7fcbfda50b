"""Where this process stands in a run: nodes, devices, its ranks, and whether it owns the outputs.

One value, read from the environment at once, answers "which process am I" for the results
folder, the progress output and the trainer: the output owner (global rank 0) alone writes the
results folder, log.txt, status.json and the archive; every other process of a multi-device or
multi-node run trains and stays quiet.

It reads the launcher's variables in the order Lightning chooses its cluster environment, so that
both agree on who is rank 0:

- torchrun (``TORCHELASTIC_RUN_ID`` set): ``RANK``, ``LOCAL_RANK``, ``GROUP_RANK`` (the node),
  ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_WORLD_SIZE`` (the nodes) in every worker;
- srun (``SLURM_NTASKS`` set, job name not ``bash``/``interactive``): ``SLURM_PROCID``,
  ``SLURM_LOCALID``, ``SLURM_NODEID``, ``SLURM_NTASKS``, ``SLURM_NNODES``; no ``RANK`` or
  ``LOCAL_RANK``, so a rule on those alone takes every srun task for rank 0;
- else Lightning's own launcher (``-g N`` on one machine): ``LOCAL_RANK``, ``NODE_RANK`` (or
  ``GROUP_RANK``) and ``WORLD_SIZE`` in the processes it starts; the first process, before it starts
  them, has none of them and is rank 0 of 1.

Standard library only: the results folder and the progress output ask it before torch is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

INTERACTIVE_SLURM_JOBS = ("bash", "interactive")   # srun --pty bash: a shell in an allocation, not a rank


@dataclass(frozen=True)
class Placement:
    devices_per_node: int = 1
    num_nodes: int = 1
    node_rank: int = 0
    local_rank: int = 0
    global_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Placement":
        """This process's placement, by the first launcher whose variables are set (see above)."""
        if "TORCHELASTIC_RUN_ID" in environ:
            return _torchrun(environ)
        if "SLURM_NTASKS" in environ and environ.get("SLURM_JOB_NAME") not in INTERACTIVE_SLURM_JOBS:
            return _srun(environ)
        return _lightning(environ)

    @property
    def is_output_owner(self) -> bool:
        """The one process that writes the results folder, the log files, status.json and the archive."""
        return self.global_rank == 0

    @property
    def is_main_on_node(self) -> bool:
        """The first process of its node: where per-machine work (a download, a cache) is done once."""
        return self.local_rank == 0


def _torchrun(env: Mapping[str, str]) -> Placement:
    return Placement(devices_per_node=_int(env, "LOCAL_WORLD_SIZE", 1), num_nodes=_int(env, "GROUP_WORLD_SIZE", 1),
                     node_rank=_int(env, "GROUP_RANK"), local_rank=_int(env, "LOCAL_RANK"),
                     global_rank=_int(env, "RANK"), world_size=_int(env, "WORLD_SIZE", 1))


def _srun(env: Mapping[str, str]) -> Placement:
    world_size, num_nodes = _int(env, "SLURM_NTASKS", 1), _int(env, "SLURM_NNODES", 1)
    return Placement(devices_per_node=max(1, world_size // num_nodes), num_nodes=num_nodes,
                     node_rank=_int(env, "SLURM_NODEID"), local_rank=_int(env, "SLURM_LOCALID"),
                     global_rank=_int(env, "SLURM_PROCID"), world_size=world_size)


def _lightning(env: Mapping[str, str]) -> Placement:
    """Ranks as Lightning's own environment counts them: node_rank * devices + local_rank (no RANK)."""
    local_rank = _int(env, "LOCAL_RANK")
    node_rank = _int(env, "NODE_RANK", _int(env, "GROUP_RANK"))
    world_size = _int(env, "WORLD_SIZE", 1)
    num_nodes = node_rank + 1   # Lightning names no node count: at least up to this node
    devices_per_node = _int(env, "LOCAL_WORLD_SIZE", max(1, local_rank + 1, world_size // num_nodes))
    global_rank = node_rank * devices_per_node + local_rank
    return Placement(devices_per_node=devices_per_node, num_nodes=num_nodes, node_rank=node_rank,
                     local_rank=local_rank, global_rank=global_rank, world_size=max(world_size, global_rank + 1))


def _int(env: Mapping[str, str], name: str, default: int = 0) -> int:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        return default
