"""Tabular input encoding for the Hopular estimators: mixed numeric / categorical columns.

Shape legend: n rows, Fn numeric columns, Fc categorical columns.

``TabularEncoder.fit(X)`` decides the type of every column and learns what is needed to encode it:

- numeric columns: mean and standard deviation over the non-missing training values (a constant
  column gets scale 1; an all-missing column gets mean 0, scale 1 and a ``UserWarning`` — every
  entry then uses the learned *missing* embedding, so the column carries no information);
  with ``numeric_transform="quantile"`` also the quantiles of every standardised column
  (scikit-learn's ``QuantileTransformer(output_distribution="normal")``, ``n_quantiles`` =
  min(1,000, n rows), at most 10,000 rows subsampled with ``random_state``), see
  :func:`quantile_normal`;
- categorical columns (pandas ``category`` / ``object`` / ``string`` / ``bool`` dtype, or named in
  ``categorical_features``): the sorted set of non-missing training values. Value ``k`` of a
  column with K categories is encoded ``k``; a missing value is ``K``; a value never seen in
  ``fit`` is ``K + 1`` (the documented *unknown* embedding).

``transform(X)`` returns ``(num (n, Fn) float32 standardised (``"standard"``) or quantile-normal
(``"quantile"``, every value in [−5.2, 5.2]) with 0 at missing entries,
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

__all__ = ["NUMERIC_TRANSFORMS", "TabularEncoder", "quantile_normal"]

_F32_MAX = float(np.finfo(np.float32).max)
#: values of ``numeric_transform``
NUMERIC_TRANSFORMS = ("standard", "quantile")
#: quantiles per column (at most; fewer when ``fit`` sees fewer rows) and rows used to estimate them
_N_QUANTILES, _QUANTILE_SUBSAMPLE = 1000, 10_000
#: scikit-learn's QuantileTransformer bounds: values within 1e-7 of the lowest / highest training
#: quantile map to the uniform 0 / 1, and the normal output is clipped at ±Φ⁻¹(1 − (1e-7 − ε))
_BOUNDS = 1e-7


def quantile_normal(z: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Quantile-normal transform of one column, the same formula as scikit-learn's
    ``QuantileTransformer(output_distribution="normal").transform`` (float64).

    ``z`` (n,) float64 values, NaN allowed (kept NaN); ``quantiles`` (Q,) non-decreasing training
    quantiles at the levels ``linspace(0, 1, Q)``. A value is mapped to its interpolated level u
    (the mean of the upward and downward interpolation, so tied quantiles map to the middle of
    their levels), u = 0 at or below the lowest quantile (+1e-7) and 1 at or above the highest
    (−1e-7), then to Φ⁻¹(u) clipped to ±5.199 — so any finite input, however far outside the
    training range, and a constant column give finite output. Monotone non-decreasing in ``z``.
    """
    from scipy.stats import norm

    clip = (norm.ppf(_BOUNDS - np.spacing(1)), norm.ppf(1 - (_BOUNDS - np.spacing(1))))
    q = np.asarray(quantiles, np.float64)
    refs = np.linspace(0, 1, len(q), endpoint=True)
    z = np.array(z, np.float64, copy=True)
    with np.errstate(invalid="ignore"):
        low, high = z - _BOUNDS < q[0], z + _BOUNDS > q[-1]
    ok = ~np.isnan(z)
    zf = z[ok]
    z[ok] = 0.5 * (np.interp(zf, q, refs) - np.interp(-zf, -q[::-1], -refs[::-1]))
    z[high] = 1.0
    z[low] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(norm.ppf(z), *clip)


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
    numeric_transform: str = "standard"
    quantiles: np.ndarray | None = None  # (Q, Fn) of the standardised columns ("quantile")

    # ------------------------------------------------------------------ fit
    def fit(self, X, random_state=None) -> TabularEncoder:
        """Learn column types and encodings; ``random_state`` seeds the row subsample of the
        quantile estimate (``"quantile"`` with more than 10,000 rows only)."""
        if self.numeric_transform not in NUMERIC_TRANSFORMS:
            raise ValueError(f"numeric_transform must be one of {NUMERIC_TRANSFORMS}, got "
                             f"{self.numeric_transform!r}")
        cols, names, cat_dtype = _columns(X)
        if not cols:
            raise ValueError("X must have at least 1 feature, got 0 columns")
        if len(cols[0]) == 0:
            raise ValueError("X must have at least 1 sample, got 0 rows")
        self.n_features, self.feature_names = len(cols), names
        self.is_categorical = self._resolve_categorical(cat_dtype, names)
        self.categories, means, scales, zs = [], [], [], []
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
                zs.append(np.zeros(len(col)))  # quantiles of a constant 0: finite
                continue
            m, s = float(col[ok].mean()), float(col[ok].std())
            means.append(m)
            scales.append(s if s > 1e-12 * max(1.0, abs(m)) and np.isfinite(s) else 1.0)
            zs.append((col - means[-1]) / scales[-1])
        self.mean, self.scale = np.asarray(means, np.float64), np.asarray(scales, np.float64)
        self.quantiles = None
        if self.numeric_transform == "quantile":
            self.quantiles = self._fit_quantiles(zs, len(cols[0]), random_state)
        return self

    @staticmethod
    def _fit_quantiles(zs: list[np.ndarray], n: int, random_state) -> np.ndarray:
        """(Q, Fn) quantiles of the standardised columns (NaN ignored), Q = min(1000, n)."""
        Q = min(_N_QUANTILES, n)
        if not zs:
            return np.zeros((Q, 0), np.float64)
        from sklearn.preprocessing import QuantileTransformer

        qt = QuantileTransformer(n_quantiles=Q, output_distribution="normal",
                                 subsample=_QUANTILE_SUBSAMPLE, random_state=random_state)
        with warnings.catch_warnings():  # a column missing in the subsample: all-NaN slice
            warnings.simplefilter("ignore", RuntimeWarning)
            q = qt.fit(np.stack(zs, 1)).quantiles_
        # a column whose non-missing values all fell outside the subsample: constant 0
        return np.ascontiguousarray(np.nan_to_num(q, nan=0.0), np.float64)

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
            if self.numeric_transform == "quantile":  # float64 all the way: |z| <= 7e50
                z = quantile_normal(z, self.quantiles[:, i_num])
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
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "numeric_transform": self.numeric_transform}

    @classmethod
    def from_config(cls, cfg: dict, quantiles: np.ndarray | None = None) -> TabularEncoder:
        """The encoder of ``to_config``; ``quantiles`` (Q, Fn) (saved with the weights) is
        required for ``"quantile"``. Configs saved before ``numeric_transform`` existed are
        ``"standard"``."""
        how = cfg.get("numeric_transform", "standard")
        if how not in NUMERIC_TRANSFORMS:
            raise ValueError(f"numeric_transform must be one of {NUMERIC_TRANSFORMS}, got {how!r}")
        enc = cls(None, cfg["n_features"], cfg["feature_names"], list(cfg["is_categorical"]),
                  [list(c) for c in cfg["categories"]], np.asarray(cfg["mean"], np.float64),
                  np.asarray(cfg["scale"], np.float64), how)
        if how == "quantile":
            q = None if quantiles is None else np.asarray(quantiles, np.float64)
            if q is None or q.ndim != 2 or q.shape[1] != enc.n_numeric or len(q) < 1:
                raise ValueError(f"numeric_transform='quantile' needs quantiles of shape "
                                 f"(Q >= 1, {enc.n_numeric}), got "
                                 f"{None if q is None else q.shape}")
            if not np.isfinite(q).all() or (np.diff(q, axis=0) < 0).any():
                raise ValueError("the saved quantiles must be finite and non-decreasing per "
                                 "column")
            enc.quantiles = q
        return enc
