"""Safe, atomic save/load for fitted estimators: ``config.json`` + ``weights.safetensors``.

A saved model is a directory::

    path/
      config.json           # JSON: estimator class, hyperparameters, fitted metadata
      weights.safetensors   # named tensors (no pickle, so loading never executes code)

Writes go to a temporary sibling directory that is renamed into place with ``os.replace``, so
an interrupted save never leaves a half-written model behind (an existing directory at ``path``
is replaced as a whole).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "load_state", "save_state"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"


def save_state(path: str | os.PathLike[str], config: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``config`` (JSON-serialisable dict) and ``tensors`` to the directory ``path`` atomically."""
    from safetensors.torch import save_file

    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    if not isinstance(tensors, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
    ):
        raise TypeError("tensors must be a dict[str, torch.Tensor]")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"path must be a directory (or not exist yet), got existing file {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps(config, indent=2, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"config must be JSON-serialisable: {err}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        (tmp / CONFIG_NAME).write_text(text, encoding="utf-8")
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(cpu, str(tmp / WEIGHTS_NAME))
        old = None
        if path.exists():  # os.replace cannot overwrite a non-empty directory: move it aside first
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_state(path: str | os.PathLike[str]) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a directory written by :func:`save_state`; returns ``(config, tensors)`` (tensors on CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no saved model at {path} (expected a directory with "
                                f"{CONFIG_NAME} and {WEIGHTS_NAME})")
    cfg_file, w_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    for f in (cfg_file, w_file):
        if not f.is_file():
            raise FileNotFoundError(f"saved model at {path} is incomplete: missing {f.name}")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{cfg_file} is not valid JSON ({err}); the saved model is corrupt") from None
    if not isinstance(config, dict):
        raise ValueError(f"{cfg_file} must hold a JSON object, got {type(config).__name__}")
    try:
        tensors = load_file(str(w_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{w_file} is not a valid safetensors file ({err}); the saved model is corrupt") from None
    return config, tensors
