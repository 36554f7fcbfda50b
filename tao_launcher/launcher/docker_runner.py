"""The Docker runner (see the Docker runner issue); for now only the engine probe."""

from __future__ import annotations

from tao_launcher.errors import UsageError
from tao_launcher.launcher.runners import Runner


def engine_answers() -> bool:
    """True when a Docker Engine answers on the default socket (or DOCKER_HOST) within a second."""
    try:
        import docker
        client = docker.from_env(timeout=1)
        client.ping()
        return True
    except Exception:
        return False


class DockerRunner(Runner):
    name = "docker"

    def run(self, job, mounts) -> int:
        raise UsageError("the docker runner is not in this version yet: use --runner local")
