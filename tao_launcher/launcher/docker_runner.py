"""The Docker runner: not in this version (it arrives with the container images, see containers/).

Until then ``--runner docker`` is a clear usage error, and the automatic choice never
picks Docker, so a machine with a Docker Engine still runs everything with the local runner.
"""

from __future__ import annotations

from tao_launcher.errors import UsageError
from tao_launcher.launcher.runners import Runner


def engine_answers() -> bool:
    """True when a Docker Engine answers on the default socket (or DOCKER_HOST) within a second."""
    try:
        import docker
        docker.from_env(timeout=1).ping()
        return True
    except Exception:
        return False


class DockerRunner(Runner):
    name = "docker"
    available = False  # set when the runner and its images land

    def run(self, job, mounts) -> int:
        raise UsageError("the docker runner is not in this version of tao yet: use --runner local "
                         "(or leave --runner out)")
