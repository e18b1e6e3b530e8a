"""Tabular input encoding for the Hopular estimators: mixed numeric / categorical columns.

Shape legend: n rows, Fn numeric columns, Fc categorical columns.

``TabularEncoder.fit(X)`` decides the type of every column and learns what is needed to encode it:

- numeric columns: mean and standard deviation over the non-missing training values (a constant
  column gets scale 1; an all-missing column gets mean 0, scale 1 and a ``UserWarning`` — every
  entry then uses the learned *missing* embedding, so the column carries no information);
- categorical columns (pandas ``category`` / ``object`` / ``string`` / ``bool`` dtype, or named in
  ``categorical_features``): the sorted set of non-missing training values. Value ``k`` of a
  column with K categories is encoded ``k``; a missing value is ``K``; a value never seen in
  ``fit`` is ``K + 1`` (the documented *unknown* embedding).

``transform(X)`` returns ``(num (n, Fn) float32 standardised with 0 at missing entries,
num_missing (n, Fn) bool, cat (n, Fc) int64 codes)``. Missing values are ``NaN`` / ``None`` /
``pd.NA`` / ``pd.NaT``; they are never imputed. ``±inf`` and finite values beyond the float32 range
(|x| > 3.4e38) raise ``ValueError`` naming the column, as do a wrong column count or, for
DataFrames fitted with column names, different column names.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TabularEncoder"]

_F32_MAX = float(np.finfo(np.float32).max)


def _is_frame(X) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _is_missing(values: np.ndarray) -> np.ndarray:
    """Bool mask of missing entries in an object array (None, NaN, pd.NA, pd.NaT)."""
    try:
        import pandas as pd

        return np.asarray(pd.isna(values), dtype=bool)
    except ImportError:  # pragma: no cover - pandas is a dependency of the benchmarks only
        return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values])


def _columns(X) -> tuple[list, list[str] | None, list[bool]]:
    """(list of 1-D column arrays, column names or None, per-column 'is categorical dtype')."""
    if _is_frame(X):
        names = [str(c) for c in X.columns]
        cols, cat = [], []
        for j in range(X.shape[1]):
            s = X.iloc[:, j]
            kind = getattr(s.dtype, "kind", "O")
            is_cat = (str(s.dtype) in ("category", "string", "boolean", "str")
                      or kind in "OUSb" or str(s.dtype).startswith("string"))
            cols.append(s.to_numpy(dtype=object) if is_cat else
                        s.to_numpy(dtype=np.float64, na_value=np.nan))
            cat.append(is_cat)
        has_names = not all(isinstance(c, numbers.Integral) for c in X.columns)
        return cols, (names if has_names else None), cat
    if isinstance(X, (list, tuple)):
        X = np.asarray(X, dtype=object)
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if not isinstance(X, np.ndarray):
        try:
            import scipy.sparse as sp

            if sp.issparse(X):
                raise TypeError("X must be dense (a numpy array or pandas DataFrame); sparse "
                                "matrices are not supported, got a scipy sparse matrix")
        except ImportError:  # pragma: no cover
            pass
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.dtype.kind in "OUS":
        return [X[:, j] for j in range(X.shape[1])], None, [True] * X.shape[1]
    if X.dtype.kind == "c":
        raise ValueError("X must hold real numbers, got complex values")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers or categories, got dtype {X.dtype}")
    return [X[:, j].astype(np.float64) for j in range(X.shape[1])], None, [False] * X.shape[1]


@dataclass
class TabularEncoder:
    """Column typing and encoding learned in ``fit`` (see the module docstring)."""

    categorical_features: object = None
    n_features: int = 0
    feature_names: list[str] | None = None
    is_categorical: list[bool] = field(default_factory=list)
    categories: list[list] = field(default_factory=list)  # per categorical column
    mean: np.ndarray | None = None  # (Fn,)
    scale: np.ndarray | None = None  # (Fn,)

    # ------------------------------------------------------------------ fit
    def fit(self, X) -> TabularEncoder:
        cols, names, cat_dtype = _columns(X)
        if not cols:
            raise ValueError("X must have at least 1 feature, got 0 columns")
        if len(cols[0]) == 0:
            raise ValueError("X must have at least 1 sample, got 0 rows")
        self.n_features, self.feature_names = len(cols), names
        self.is_categorical = self._resolve_categorical(cat_dtype, names)
        self.categories, means, scales = [], [], []
        for j, (col, is_cat) in enumerate(zip(cols, self.is_categorical)):
            name = self._name(j)
            if is_cat:
                miss = _is_missing(col)
                vals = col[~miss]
                try:
                    levels = sorted(set(vals.tolist()))
                except TypeError:  # mixed types: order by their string form
                    levels = sorted(set(vals.tolist()), key=lambda v: (type(v).__name__, str(v)))
                if not levels:
                    warnings.warn(f"X column {name} is missing in every row: it is kept, every "
                                  f"entry uses the learned 'missing' embedding", UserWarning,
                                  stacklevel=3)
                self.categories.append(levels)
                continue
            col = self._numeric(col, name)
            ok = ~np.isnan(col)
            if not ok.any():
                warnings.warn(f"X column {name} is missing in every row: it is kept, every entry "
                              f"uses the learned 'missing' embedding", UserWarning, stacklevel=3)
                means.append(0.0)
                scales.append(1.0)
                continue
            m, s = float(col[ok].mean()), float(col[ok].std())
            means.append(m)
            scales.append(s if s > 1e-12 * max(1.0, abs(m)) and np.isfinite(s) else 1.0)
        self.mean, self.scale = np.asarray(means, np.float64), np.asarray(scales, np.float64)
        return self

    def _resolve_categorical(self, cat_dtype: list[bool], names: list[str] | None) -> list[bool]:
        cf, d = self.categorical_features, len(cat_dtype)
        out = list(cat_dtype)
        if cf is None:
            return out
        items = np.asarray(cf).ravel().tolist() if not isinstance(cf, str) else [cf]
        if len(items) == d and all(isinstance(v, (bool, np.bool_)) for v in items):
            return [a or bool(b) for a, b in zip(out, items)]
        for v in items:
            if isinstance(v, (bool, np.bool_)):
                raise ValueError(f"categorical_features as a bool mask must have length "  # noqa: TRY004
                                 f"n_features={d}, got length {len(items)}")
            if isinstance(v, numbers.Integral):
                if not -d <= int(v) < d:
                    raise ValueError(f"categorical_features index {v} is out of range for "
                                     f"{d} features")
                out[int(v)] = True
            elif isinstance(v, str):
                if names is None or v not in names:
                    raise ValueError(f"categorical_features name {v!r} is not a column of X "
                                     f"(columns: {names})")
                out[names.index(v)] = True
            else:
                raise TypeError(f"categorical_features must hold ints, column names or bools, "
                                f"got {type(v).__name__}")
        return out

    def _name(self, j: int) -> str:
        return repr(self.feature_names[j]) if self.feature_names else str(j)

    @staticmethod
    def _numeric(col: np.ndarray, name: str) -> np.ndarray:
        try:
            col = np.asarray(col, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"X column {name} must be numeric or declared in "
                             f"categorical_features, got non-numeric values") from None
        bad = np.isinf(col)
        if bad.any():
            raise ValueError(f"X column {name} contains infinity (row {int(np.argmax(bad))}); "
                             f"use NaN for a missing value")
        big = np.abs(np.nan_to_num(col)) > _F32_MAX
        if big.any():
            raise ValueError(f"X column {name} has a value {col[np.argmax(big)]!r} beyond the "
                             f"float32 range (|x| <= {_F32_MAX:.3g}) the network computes in")
        return col

    # ------------------------------------------------------------------ transform
    @property
    def n_numeric(self) -> int:
        return int(sum(not c for c in self.is_categorical))

    @property
    def cardinalities(self) -> list[int]:
        return [len(c) for c in self.categories]

    def transform(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cols, names, _ = _columns(X)
        if len(cols) != self.n_features:
            raise ValueError(f"X has {len(cols)} features, but the estimator was fitted with "
                             f"{self.n_features} features")
        if self.feature_names is not None and names is not None and names != self.feature_names:
            raise ValueError(f"X column names must match those seen in fit, in the same order: "
                             f"expected {self.feature_names}, got {names}")
        n = len(cols[0]) if cols else 0
        num = np.zeros((n, self.n_numeric), np.float32)
        miss = np.zeros((n, self.n_numeric), bool)
        cat = np.zeros((n, len(self.categories)), np.int64)
        i_num = i_cat = 0
        for j, (col, is_cat) in enumerate(zip(cols, self.is_categorical)):
            if is_cat:
                levels = self.categories[i_cat]
                lookup = {v: k for k, v in enumerate(levels)}
                m = _is_missing(col)
                codes = np.full(n, len(levels) + 1, np.int64)  # unknown
                for r in np.flatnonzero(~m):
                    v = col[r]
                    k = lookup.get(v)
                    if k is None and isinstance(v, (float, np.floating)) and float(v).is_integer():
                        k = lookup.get(int(v))  # 1.0 == 1 after a pandas round trip
                    if k is not None:
                        codes[r] = k
                codes[m] = len(levels)
                cat[:, i_cat] = codes
                i_cat += 1
                continue
            col = self._numeric(col, self._name(j))
            m = np.isnan(col)
            z = (np.where(m, 0.0, col) - self.mean[i_num]) / self.scale[i_num]
            z[m] = 0.0
            if np.abs(z).max(initial=0.0) > _F32_MAX:
                raise ValueError(f"X column {self._name(j)} standardises to values beyond the "
                                 f"float32 range")
            num[:, i_num], miss[:, i_num] = z, m
            i_num += 1
        return num, miss, cat

    def to_config(self) -> dict:
        def plain(v):
            return v.item() if isinstance(v, np.generic) else v

        for levels in self.categories:
            for v in levels:
                if not isinstance(plain(v), (str, int, float, bool)):
                    raise TypeError(f"categories must be str/int/float/bool to be saved, got "
                                    f"{type(v).__name__}")
        return {"n_features": self.n_features, "feature_names": self.feature_names,
                "is_categorical": self.is_categorical,
                "categories": [[plain(v) for v in c] for c in self.categories],
                "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_config(cls, cfg: dict) -> TabularEncoder:
        return cls(None, cfg["n_features"], cfg["feature_names"], list(cfg["is_categorical"]),
                   [list(c) for c in cfg["categories"]], np.asarray(cfg["mean"], np.float64),
                   np.asarray(cfg["scale"], np.float64))
