"""Save/load of fitted estimators: one versioned format, ``config.json`` + ``weights.safetensors``.

A saved model is a directory::

    path/
      config.json           # format name + version, estimator class, parameters, fitted metadata,
                            # SHA-256 of the weights file
      weights.safetensors   # named tensors (no pickle, so loading never executes code)

Saving (:func:`save_model`):

- ``path`` may not exist yet, be an empty directory, or hold a model saved by the same class; the
  last needs ``overwrite=True``. Anything else (a file, a folder with other content, a model of
  another class) is refused with a ``ValueError`` naming ``path``, and nothing is touched.
- Files are written into a temporary sibling directory (each through :mod:`hopfield._io`, fsynced)
  that then replaces ``path`` (:func:`hopfield._io.replace_dir`); a crash leaves either the old or
  the new model. When an old model is replaced, only its ``config.json`` and
  ``weights.safetensors`` are deleted: the library never deletes a file it did not write.

Loading (:func:`load_model`) validates before allocating: the format version, the class (must be
a ``hopfield`` class and a subclass of the one asked for), every parameter (the estimator's own
parameter validation), the fitted metadata, the weights' checksum, every tensor's name and shape
(against the network built on the ``meta`` device, so a hand-edited size of 10**6 is refused without
allocating) and finiteness. Every failure is a ``ValueError`` (``FileNotFoundError`` for a missing
model) that names the file.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write, atomic_write_text, replace_dir

__all__ = ["CONFIG_NAME", "FORMAT", "FORMAT_VERSION", "WEIGHTS_NAME", "load_model", "load_state",
           "save_model", "save_state"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
FORMAT = "hopfield-estimator"
FORMAT_VERSION = 1
_OURS = (CONFIG_NAME, WEIGHTS_NAME)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _saved_class(path: Path) -> str | None:
    """The class recorded in ``path/config.json`` if ``path`` holds only a saved model, else
    None."""
    try:
        config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    name = config.get("class", config.get("estimator"))   # "estimator": unversioned tabular files
    return name if isinstance(name, str) else None


def _check_target(path: Path, klass: str, overwrite: bool) -> None:
    """Raise unless ``path`` may receive a model of ``klass`` (absent, empty, or our model)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"cannot save a model to {path}: it is an existing file (a saved model is "
                         f"a directory); choose another path")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    saved = _saved_class(path) if set(entries) <= set(_OURS) else None
    if saved is None:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(f"cannot save a model to {path}: the folder is not empty and is not a "
                         f"saved model (it holds {shown}); nothing was changed. Choose a new or "
                         f"empty folder")
    if saved.rpartition(".")[2] != klass.rpartition(".")[2]:
        raise ValueError(f"cannot save a {klass.rpartition('.')[2]} to {path}: the folder holds a "
                         f"saved {saved}; nothing was changed. Choose another folder")
    if not overwrite:
        raise ValueError(f"{path} already holds a saved {saved.rpartition('.')[2]}; pass "
                         f"overwrite=True to replace it")


def save_state(path: str | os.PathLike[str], config: dict, tensors: dict[str, torch.Tensor], *,
               overwrite: bool = False) -> None:
    """Write ``config`` (JSON object) and ``tensors`` as a model directory at ``path``."""
    from safetensors.torch import save_file

    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    if not isinstance(tensors, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
    ):
        raise TypeError("tensors must be a dict[str, torch.Tensor]")
    path = Path(path)
    klass = str(config.get("class", config.get("estimator", "")))
    _check_target(path, klass, overwrite)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        atomic_write(tmp / WEIGHTS_NAME, lambda t: save_file(cpu, t))
        config = {**config, "weights_sha256": _sha256(tmp / WEIGHTS_NAME)}
        try:
            text = json.dumps(config, indent=2, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise TypeError(f"config must be JSON-serialisable: {err}") from None
        atomic_write_text(tmp / CONFIG_NAME, text + "\n")
        replace_dir(tmp, path, owned=_OURS)   # deletes only the old model's two files
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)   # only our own temporary files
        raise


def load_state(path: str | os.PathLike[str]) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a directory written by :func:`save_state`; returns ``(config, tensors)`` (on CPU)."""
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
        raise ValueError(
            f"{cfg_file} is not valid JSON ({err}); the saved model is corrupt") from None
    if not isinstance(config, dict):
        raise ValueError(  # noqa: TRY004 - a corrupt saved model, not a wrong argument type
            f"{cfg_file} must hold a JSON object, got {type(config).__name__}")
    sha = config.get("weights_sha256")
    if sha is not None and sha != _sha256(w_file):
        raise ValueError(f"{w_file} does not match the checksum in {cfg_file}: the two files do "
                         f"not belong together (corrupt or edited)")
    try:
        tensors = load_file(str(w_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{w_file} is not a valid safetensors file ({err}); the saved model is "
                         f"corrupt") from None
    return config, tensors


# ----------------------------------------------------------------------------- estimators


def _json_params(est) -> dict:
    params = {}
    for k, v in est.get_params(deep=False).items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        elif isinstance(v, torch.device):
            v = str(v)
        elif k == "random_state" and not isinstance(v, (int, type(None))):
            v = None                   # a RandomState instance: its stream is not reproducible
        params[k] = v
    return params


def save_model(est, path, *, overwrite: bool = False) -> None:
    """Save a fitted :class:`~hopfield.estimators._base.HopfieldEstimator` (see module docs)."""
    cls = type(est)
    fitted = {
        "n_features_in": int(est.n_features_in_),
        "feature_names_in": (None if getattr(est, "feature_names_in_", None) is None
                             else [str(c) for c in est.feature_names_in_]),
        "n_iter": int(est.n_iter_),
        "best_iteration": [int(i) for i in est.best_iteration_],
        "loss_curve": [float(v) for v in est.loss_curve_],
        "validation_scores": [float(v) for v in est.validation_scores_],
        "best_validation_score": est.best_validation_score_,
    }
    if hasattr(est, "classes_"):
        c = est.classes_
        fitted["classes"] = c.tolist()
        fitted["classes_dtype"] = "str" if c.dtype.kind in "UO" else c.dtype.str
    for name in est._extra_fitted:
        fitted[name] = getattr(est, name)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "class": f"{cls.__module__}.{cls.__qualname__}", "params": _json_params(est),
              "fitted": fitted}
    tensors = {f"module.{k}": v for k, v in est.module_.state_dict().items()}
    for name in ("scaler", "target_scaler"):
        s = getattr(est, f"{name}_", None)
        if s is not None:
            tensors[f"{name}.mean"] = torch.from_numpy(np.ascontiguousarray(s.mean))
            tensors[f"{name}.scale"] = torch.from_numpy(np.ascontiguousarray(s.scale))
    save_state(path, config, tensors, overwrite=overwrite)


def _bad(path, msg) -> ValueError:
    return ValueError(f"{Path(path) / CONFIG_NAME} is not a valid saved model: {msg}")


def _get(d: dict, key: str, types, path, where="fitted"):
    if key not in d:
        raise _bad(path, f"missing {where}[{key!r}]")
    v = d[key]
    if not isinstance(v, types) or isinstance(v, bool):
        raise _bad(path, f"{where}[{key!r}] has type {type(v).__name__}")
    return v


def load_model(cls, path, *, device=None):
    """Load and validate a model directory for ``cls`` (or a subclass recorded in it)."""
    from ._base import Standardizer

    config, tensors = load_state(path)
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        found = config.get("format_version", "none (an older hopfield release)")
        raise _bad(path, f"format_version must be {FORMAT_VERSION} (format {FORMAT!r}), got "
                         f"{found!r}; refit and save the model again with this release")
    name = _get(config, "class", str, path, "config")
    mod, _, qual = name.rpartition(".")
    if mod != "hopfield" and not mod.startswith("hopfield."):      # never import foreign code
        raise _bad(path, f"saved model class {name!r} is not part of hopfield")
    try:
        klass = getattr(importlib.import_module(mod), qual)
    except (ImportError, AttributeError):
        raise _bad(path, f"unknown class {name!r}") from None
    if not (isinstance(klass, type) and issubclass(klass, cls)):
        raise ValueError(  # noqa: TRY004 - the folder's content; tests pin ValueError
            f"{path} holds a saved {name}, not a {cls.__name__}")
    params = _get(config, "params", dict, path, "config")
    fitted = _get(config, "fitted", dict, path, "config")
    try:
        est = klass(**params)
        if device is not None:
            est.set_params(device=device)
        est._resolve_params(warn=False)
    except (TypeError, ValueError) as err:
        raise _bad(path, f"bad params: {err}") from None
    est.n_features_in_ = _get(fitted, "n_features_in", int, path)
    if est.n_features_in_ < 1:
        raise _bad(path, f"n_features_in must be >= 1, got {est.n_features_in_}")
    names = fitted.get("feature_names_in")
    if names is not None:
        if not (isinstance(names, list) and len(names) == est.n_features_in_
                and all(isinstance(s, str) for s in names)):
            raise _bad(path, "feature_names_in must be a list of n_features_in strings")
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if "classes" in fitted:
        classes = _get(fitted, "classes", list, path)
        kind = _get(fitted, "classes_dtype", str, path)
        try:
            est.classes_ = np.asarray(classes, dtype=None if kind == "str" else np.dtype(kind))
        except (TypeError, ValueError) as err:
            raise _bad(path, f"classes: {err}") from None
        if (est.classes_.ndim != 1 or len(est.classes_) < 2
                or len(np.unique(est.classes_)) != len(classes)):
            raise _bad(path, "classes must be a list of >= 2 distinct labels")
        est._n_outputs = len(est.classes_)
    est.n_iter_ = _get(fitted, "n_iter", int, path)
    est.best_iteration_ = np.asarray(_get(fitted, "best_iteration", list, path), dtype=np.int64)
    est.loss_curve_ = [float(v) for v in _get(fitted, "loss_curve", list, path)]
    est.validation_scores_ = [float(v) for v in _get(fitted, "validation_scores", list, path)]
    est.best_validation_score_ = fitted.get("best_validation_score")
    for extra in klass._extra_fitted:
        if extra not in fitted:
            raise _bad(path, f"missing fitted[{extra!r}]")
        setattr(est, extra, fitted[extra])
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{Path(path) / WEIGHTS_NAME}: tensor {key!r} holds NaN or infinite "
                             f"values; the saved model is corrupt")
    D = est.n_features_in_
    for name in ("scaler", "target_scaler"):
        if f"{name}.mean" in tensors or name == "scaler":
            try:
                mean, scale = tensors[f"{name}.mean"].numpy(), tensors[f"{name}.scale"].numpy()
            except KeyError as err:
                raise ValueError(f"weights in {path} lack {err.args[0]!r}") from None
            want = (D,) if name == "scaler" else (1,)
            if mean.shape != want or scale.shape != want or not (scale > 0).all():
                raise ValueError(f"weights in {path}: {name} must have shape {want} with scale > 0")
            setattr(est, f"{name}_", Standardizer(mean, scale))
    state = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
    try:
        with torch.device("meta"):
            shape_net = est._build_module(None, est._n_outputs, None)
    except (ValueError, TypeError, RuntimeError) as err:
        raise _bad(path, f"cannot build the network: {err}") from None
    expect = {k: tuple(v.shape) for k, v in shape_net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expect != found:
        diff = sorted(set(expect.items()) ^ set(found.items()))[:3]
        raise ValueError(f"weights in {path} do not match its config.json (first differences, "
                         f"(name, shape): {diff})")
    net = est._build_module(None, est._n_outputs, None)
    net.load_state_dict(state)
    est._torch_device = est._device()
    est.module_ = net.to(est._torch_device).eval()
    return est
