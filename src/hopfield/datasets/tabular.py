"""Mid-size public tabular sets (2,000–60,000 rows), read offline, with fixed seeded splits.

=============== ====== ======== ==================== =============================================
name            rows   features task                 source (Debian package, R object)
=============== ====== ======== ==================== =============================================
letter          20000  16       26-class             r-cran-mlbench ``LetterRecognition``
satellite       6435   36       6-class              r-cran-mlbench ``Satellite``
shuttle         58000  9        7-class (imbalanced) r-cran-mlbench ``Shuttle``
dna             3186   180 cat. 3-class              r-cran-mlbench ``DNA``
churn           5000   19 mixed binary               r-cran-modeldata ``mlc_churn``
credit          4454   13 mixed binary, missing      r-cran-modeldata ``credit_data``
ames            2930   73 mixed regression           r-cran-modeldata ``ames`` (log10 Sale_Price)
diamonds        53940  9 mixed  regression           r-cran-ggplot2 ``diamonds`` (log10 price)
=============== ====== ======== ==================== =============================================

Features come as a :class:`pandas.DataFrame` with R factors as pandas ``category`` columns and
missing values as NaN (for estimators that need numbers, :meth:`TabularData.numeric` one-hot
encodes categories and leaves NaN in place). Regression targets are log10-transformed prices (the
usual practice for both sets; RMSE is reported on that scale).

Splits: one fixed train / validation / test split per set (70 / 10 / 20 %, stratified by class
for classification, ``numpy.random.RandomState(seed)`` with seed 0), written once to
``<data_dir>/tabular-splits/<name>.json`` and read back on every later call, so every method and
every run uses the same rows. A split file that does not match the data (row count) raises
``ValueError`` instead of being replaced.

Data: ``<data_dir>/mlbench``, ``<data_dir>/modeldata``, ``<data_dir>/ggplot2`` hold the extracted
Debian packages (``scripts/fetch_data.sh``; by hand: ``apt-get download r-cran-modeldata &&
dpkg -x r-cran-modeldata_*.deb <data_dir>/modeldata``).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_text
from ._paths import data_dir as _data_dir_fn

__all__ = ["TABULAR_SETS", "TabularData", "load_tabular"]

# name -> (package, object, target column, task, drop columns, log10 target)
TABULAR_SETS: dict[str, tuple[str, str, str, str, tuple[str, ...], bool]] = {
    "letter": ("mlbench", "LetterRecognition", "lettr", "classification", (), False),
    "satellite": ("mlbench", "Satellite", "classes", "classification", (), False),
    "shuttle": ("mlbench", "Shuttle", "Class", "classification", (), False),
    "dna": ("mlbench", "DNA", "Class", "classification", (), False),
    "churn": ("modeldata", "mlc_churn", "churn", "classification", (), False),
    "credit": ("modeldata", "credit_data", "Status", "classification", (), False),
    "ames": ("modeldata", "ames", "Sale_Price", "regression", (), True),
    "diamonds": ("ggplot2", "diamonds", "price", "regression", (), True),
}

_HOW = "apt-get download r-cran-{pkg} && dpkg -x r-cran-{pkg}_*.deb {dir}"
FRACTIONS = (0.7, 0.1, 0.2)


@dataclass
class TabularData:
    """A tabular set with its fixed split. ``y`` holds int class codes (classification, names in
    ``classes``) or float targets (regression)."""

    name: str
    X: object  # pandas.DataFrame (n, d)
    y: np.ndarray  # (n,)
    task: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    classes: list[str] | None = None

    @property
    def categorical(self) -> list[str]:
        return [c for c in self.X.columns if str(self.X[c].dtype) == "category"]

    def numeric(self) -> np.ndarray:
        """(n, d') float64: numeric columns as they are (NaN kept), categories one-hot."""
        import pandas as pd

        return pd.get_dummies(self.X, dummy_na=False, dtype=np.float64).to_numpy(np.float64)

    def parts(self, numeric: bool = False):
        """``(X_train, y_train, X_val, y_val, X_test, y_test)``; DataFrames unless ``numeric``."""
        X = self.numeric() if numeric else self.X
        take = (lambda idx: X[idx]) if numeric else (lambda idx: X.iloc[idx].reset_index(drop=True))
        return (take(self.train), self.y[self.train], take(self.val), self.y[self.val],
                take(self.test), self.y[self.test])


def _read(pkg: str, obj: str, root: Path):
    base = root / pkg / "usr" / "lib" / "R" / "site-library" / pkg / "data"
    if pkg == "mlbench":
        path = base / f"{obj}.rda"
        if not path.is_file():
            hits = sorted((root / pkg).rglob(f"{obj}.rda")) if (root / pkg).is_dir() else []
            path = hits[0] if hits else path
        if not path.is_file():
            raise FileNotFoundError(f"{obj}.rda not found under {root / pkg}; obtain it with "
                                    f"`{_HOW.format(pkg=pkg, dir=root / pkg)}` (or set "
                                    f"HOPFIELD_DATA / --data-dir)")
        import rdata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rdata.read_rda(str(path))[obj]
    from ._rdata_lazy import read_lazyload

    if not (base / "Rdata.rdx").is_file():
        hits = sorted((root / pkg).rglob("Rdata.rdx")) if (root / pkg).is_dir() else []
        if not hits:
            raise FileNotFoundError(f"the R lazy-load data of {pkg} is not under {root / pkg}; "
                                    f"obtain it with `{_HOW.format(pkg=pkg, dir=root / pkg)}` "
                                    f"(or set HOPFIELD_DATA / --data-dir)")
        base = hits[0].parent
    return read_lazyload(base / "Rdata", obj)


def _split(y: np.ndarray, task: str, seed: int) -> dict[str, list[int]]:
    rng = np.random.RandomState(seed)
    groups = ([np.flatnonzero(y == c) for c in np.unique(y)] if task == "classification"
              else [np.arange(len(y))])
    out = {"train": [], "val": [], "test": []}
    for g in groups:
        g = rng.permutation(g)
        n_te = round(FRACTIONS[2] * len(g))
        n_va = round(FRACTIONS[1] * len(g))
        out["test"] += g[:n_te].tolist()
        out["val"] += g[n_te:n_te + n_va].tolist()
        out["train"] += g[n_te + n_va:].tolist()
    return {k: sorted(int(i) for i in v) for k, v in out.items()}


def load_tabular(name: str, *, data_dir: str | os.PathLike[str] | None = None,
                 seed: int = 0) -> TabularData:
    """Load tabular set ``name`` (one of :data:`TABULAR_SETS`) with its fixed split."""
    import pandas as pd

    if name not in TABULAR_SETS:
        raise ValueError(f"name must be one of {sorted(TABULAR_SETS)}, got {name!r}")
    pkg, obj, target, task, drop, log = TABULAR_SETS[name]
    root = _data_dir_fn(data_dir)
    df = _read(pkg, obj, root)
    df.columns = [str(c) for c in df.columns]
    yraw = df[target]
    X = df.drop(columns=[target, *drop])
    for c in X.columns:  # nullable ints -> float with NaN; ordered factors stay categories
        if str(X[c].dtype) in ("Int32", "Int64", "Int16", "Int8"):
            X[c] = X[c].astype("float64")
        elif str(X[c].dtype) != "category" and X[c].dtype.kind in "OU":
            X[c] = X[c].astype("category")
    if task == "classification":
        keep = ~pd.isna(yraw).to_numpy()
        cat = pd.Categorical(yraw[keep].astype(str))
        classes = [str(c) for c in cat.categories]
        y = np.asarray(cat.codes, dtype=np.int64)
    else:
        vals = pd.to_numeric(yraw, errors="coerce").to_numpy(np.float64)
        keep = np.isfinite(vals) & ((vals > 0) if log else True)
        y = np.log10(vals[keep]) if log else vals[keep]
        classes = None
    X = X.loc[keep].reset_index(drop=True)
    path = root / "tabular-splits" / f"{name}.json"
    if path.is_file():
        split = json.loads(path.read_text(encoding="utf-8"))
        if split.get("n") != len(y) or split.get("seed") != seed:
            raise ValueError(f"{path} describes a split of {split.get('n')} rows (seed "
                             f"{split.get('seed')}) but {name} has {len(y)} rows (seed {seed}); "
                             f"move that file away to write a new split")
    else:
        split = {"name": name, "n": len(y), "seed": seed, "fractions": list(FRACTIONS),
                 **_split(y, task, seed)}
        atomic_write_text(path, json.dumps(split))
    idx = {k: np.asarray(split[k], dtype=np.int64) for k in ("train", "val", "test")}
    return TabularData(name, X, y, task, idx["train"], idx["val"], idx["test"], classes)
