"""Placement: which process this is, read from what each launcher sets, and who owns the outputs."""

from __future__ import annotations

import pytest

from tao_launcher.core.placement import Placement


def torchrun_worker(node: int, local: int, nodes: int = 2, per_node: int = 2) -> dict:
    """The variables torchrun (torch.distributed.elastic's local agent) gives a worker; no NODE_RANK."""
    return {"TORCHELASTIC_RUN_ID": "job", "RANK": str(node * per_node + local), "LOCAL_RANK": str(local),
            "GROUP_RANK": str(node), "ROLE_RANK": str(node * per_node + local), "LOCAL_WORLD_SIZE": str(per_node),
            "WORLD_SIZE": str(nodes * per_node), "GROUP_WORLD_SIZE": str(nodes), "MASTER_ADDR": "node0",
            "MASTER_PORT": "29500"}


def srun_task(node: int, nodes: int = 2) -> dict:
    """An ``srun -N 2 --ntasks-per-node 1`` task: SLURM's variables only, no RANK or LOCAL_RANK."""
    return {"SLURM_JOB_NAME": "train", "SLURM_PROCID": str(node), "SLURM_LOCALID": "0", "SLURM_NODEID": str(node),
            "SLURM_NTASKS": str(nodes), "SLURM_NNODES": str(nodes), "SLURM_NTASKS_PER_NODE": "1"}


def test_a_single_process_is_rank_0_of_1_and_owns_the_outputs():
    placement = Placement.from_env({})
    assert placement == Placement(devices_per_node=1, num_nodes=1, node_rank=0, local_rank=0, global_rank=0,
                                  world_size=1)
    assert placement.is_output_owner and placement.is_main_on_node


@pytest.mark.parametrize("node,local", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_torchrun_2_nodes_x_2_devices_has_one_owner_the_global_rank_0(node, local):
    placement = Placement.from_env(torchrun_worker(node, local))
    assert placement == Placement(devices_per_node=2, num_nodes=2, node_rank=node, local_rank=local,
                                  global_rank=2 * node + local, world_size=4)
    assert placement.is_output_owner == (node == 0 and local == 0)   # the first worker of node 2 is not
    assert placement.is_main_on_node == (local == 0)


@pytest.mark.parametrize("node", [0, 1])
def test_srun_2_nodes_x_1_task_has_one_owner(node):
    placement = Placement.from_env(srun_task(node))
    assert placement == Placement(devices_per_node=1, num_nodes=2, node_rank=node, local_rank=0, global_rank=node,
                                  world_size=2)
    assert placement.is_output_owner == (node == 0)
    assert placement.is_main_on_node


def test_a_shell_in_a_slurm_allocation_is_not_a_rank():
    """``srun --pty bash`` (job name bash or interactive): Lightning does not count it as SLURM's, nor does tao."""
    env = {**srun_task(1), "SLURM_JOB_NAME": "interactive"}
    assert Placement.from_env(env) == Placement()


def test_torchrun_under_srun_follows_torchrun():
    """srun starts one torchrun per node; the workers carry that task's SLURM variables too."""
    env = {**srun_task(0), **torchrun_worker(1, 0)}
    placement = Placement.from_env(env)
    assert placement.global_rank == 2 and not placement.is_output_owner


@pytest.mark.parametrize("local", [0, 1, 2])
def test_lightning_ddp_children_on_one_machine(local):
    """Lightning's launcher (-g 3) sets LOCAL_RANK, NODE_RANK and WORLD_SIZE (no RANK) for the processes it
    starts, and LOCAL_RANK=0 in its own once it starts them: only that first process owns the outputs."""
    placement = Placement.from_env({"LOCAL_RANK": str(local), "NODE_RANK": "0", "WORLD_SIZE": "3",
                                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "40000"})
    assert (placement.global_rank, placement.world_size, placement.num_nodes) == (local, 3, 1)
    assert placement.is_output_owner == (local == 0)


@pytest.mark.parametrize("env,owner", [
    ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
    ({"LOCAL_RANK": "1"}, False),
    ({"NODE_RANK": "1"}, False),
    ({"LOCAL_RANK": "0", "NODE_RANK": "1", "WORLD_SIZE": "4"}, False),
    ({"LOCAL_RANK": "1", "NODE_RANK": "1", "WORLD_SIZE": "4"}, False),
])
def test_without_a_cluster_launcher_local_and_node_rank_decide_as_before(env, owner):
    """The rule of the results folder before Placement: a worker where LOCAL_RANK or NODE_RANK is not 0."""
    assert Placement.from_env(env).is_output_owner is owner


def test_the_results_folder_of_a_worker_is_left_alone(tmp_path):
    from tao_launcher.core.results import ResultsFolder

    worker = ResultsFolder(tmp_path / "r", "t", "train", placement=Placement.from_env(torchrun_worker(1, 0)))
    worker.prepare(overwrite=False, resumable=True)
    worker.record({"m": 1.0})
    worker.end("finished")
    assert not (tmp_path / "r").exists()
