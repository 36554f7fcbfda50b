"""Which container image runs a task: the task table's default, or the user's config file.

The user config (``~/.tao/config.json``, or the file named by ``TAO_CONFIG_FILE``)::

    {"images": {"default": "registry.example.com/tao-launcher:0.1.0-pyt",
                "text_classification": "tao-launcher:dev-pyt"}}

A task's own entry wins over ``default``, which wins over the task table. Images carry the
project version in the label ``org.opencontainers.image.version``; ``version_warning`` says
when it differs from the launcher's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional

from tao_launcher import __version__
from tao_launcher.errors import UsageError

CONFIG_ENV = "TAO_CONFIG_FILE"
DEFAULT_CONFIG_FILE = "~/.tao/config.json"
VERSION_LABEL = "org.opencontainers.image.version"
CONFIG_KEYS = {"images"}


def config_file_path() -> Path:
    return Path(os.path.expanduser(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE))


def load_image_overrides() -> Dict[str, str]:
    """The ``images`` table of the user config; empty when there is no config file."""
    path = config_file_path()
    if not path.exists():
        if os.environ.get(CONFIG_ENV):
            raise UsageError(f"config file {path} does not exist: create it or unset {CONFIG_ENV}")
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UsageError(f'{path}: the config file must be a JSON object such as {{"images": {{"default": "IMAGE"}}}}')
    for key in data:
        if key not in CONFIG_KEYS:
            raise UsageError(f'{path}: unknown key "{key}"; the config file knows only "images"')
    images = data.get("images", {})
    if not isinstance(images, dict) or not all(isinstance(v, str) and v for v in images.values()):
        raise UsageError(f'{path}: "images" must map a task name (or "default") to an image name, '
                         f'for example {{"default": "tao-launcher:{__version__}-pyt"}}')
    from tao_launcher.registry import TASKS

    for name in images:
        if name != "default" and name not in TASKS:
            import difflib
            close = difflib.get_close_matches(name, list(TASKS), n=1)
            hint = f"did you mean {close[0]}?" if close else "use a task name or \"default\""
            raise UsageError(f'{path}: "images" names an unknown task "{name}"; {hint}')
    return dict(images)


def image_for(task) -> str:
    overrides = load_image_overrides()
    return overrides.get(task.name) or overrides.get("default") or task.image


def version_warning(image: str, labels: Optional[Dict[str, str]]) -> Optional[str]:
    """A sentence when the image was built from another version of tao than this launcher."""
    image_version = (labels or {}).get(VERSION_LABEL)
    if image_version is None:
        return (f"image {image} has no {VERSION_LABEL} label, so its tao version is unknown "
                f"(launcher {__version__}); build it with 'make image' to be sure they match")
    if image_version != __version__:
        return (f"launcher version {__version__} and image {image} (tao {image_version}) differ: "
                f"rebuild the image ('make image') or install launcher {image_version}")
    return None
