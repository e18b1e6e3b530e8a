"""Methods and tuning grids of the UCI benchmark (``hopfield reproduce uci``).

Every method gets the same number of grid points per mode (``smoke`` 1, ``quick`` 2, ``full`` 8),
so the tuning budget is comparable. All run single-threaded (``n_jobs=1`` / ``thread_count=1`` /
``nthread=1``) and seeded with the run's seed. Features are already standardised by
Fernández-Delgado et al.; labels are encoded to ``0..k-1`` over the training classes.

Grids (``full``; ``quick`` uses the first 2 points listed in :data:`QUICK`):

=========== ===================================================================================
method      grid (8 points)
=========== ===================================================================================
hopfield    quantity {8, 32} x dropout {0.1, 0.25} x learning_rate {1e-3, 3e-3} (HopfieldClassifier)
svm_rbf     C {0.5, 2, 8, 32} x gamma {1/(4d), 1/d}
rf          max_features {sqrt, 0.5} x min_samples_leaf {1, 3} x criterion {gini, entropy}, 500 trees
xgboost     learning_rate {0.03, 0.1} x max_depth {3, 6} x subsample {0.7, 1.0}, 300 rounds
lightgbm    learning_rate {0.03, 0.1} x num_leaves {7, 31} x min_child_samples {5, 20}, 300 rounds
catboost    learning_rate {0.03, 0.1} x depth {4, 6} x l2_leaf_reg {1, 10}, 300 iterations
hist_gb     learning_rate {0.03, 0.1} x max_leaf_nodes {7, 31} x l2_regularization {0, 1}, 300 it.
logreg      C {0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10}
knn         n_neighbors {1, 3, 5, 9, 15, 25} x weights {uniform, distance} (first 8 pairs)
mlp         hidden {(64,), (128, 128)} x alpha {1e-4, 1e-2} x learning_rate_init {1e-3, 1e-2}
=========== ===================================================================================
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from ..estimators.tabular import TUNING_GRID

__all__ = ["METHODS", "QUICK", "grid", "make"]


def _product(**axes) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, vals)) for vals in itertools.product(*axes.values())]


FULL: dict[str, list[dict]] = {
    "hopfield": _product(**TUNING_GRID),
    "svm_rbf": _product(C=[0.5, 2.0, 8.0, 32.0], gamma_factor=[0.25, 1.0]),
    "rf": _product(max_features=["sqrt", 0.5], min_samples_leaf=[1, 3],
                   criterion=["gini", "entropy"]),
    "xgboost": _product(learning_rate=[0.03, 0.1], max_depth=[3, 6], subsample=[0.7, 1.0]),
    "lightgbm": _product(learning_rate=[0.03, 0.1], num_leaves=[7, 31],
                         min_child_samples=[5, 20]),
    "catboost": _product(learning_rate=[0.03, 0.1], depth=[4, 6], l2_leaf_reg=[1.0, 10.0]),
    "hist_gb": _product(learning_rate=[0.03, 0.1], max_leaf_nodes=[7, 31],
                        l2_regularization=[0.0, 1.0]),
    "logreg": [{"C": c} for c in [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]],
    "knn": _product(n_neighbors=[1, 3, 5, 9, 15, 25], weights=["uniform", "distance"])[:8],
    "mlp": _product(hidden_layer_sizes=[(64,), (128, 128)], alpha=[1e-4, 1e-2],
                    learning_rate_init=[1e-3, 1e-2]),
}

#: ``quick``: 2 points per method (the defaults plus one alternative).
QUICK: dict[str, list[dict]] = {
    "hopfield": [{}, {"dropout": 0.25, "weight_decay": 1e-2}],
    "svm_rbf": [{"C": 1.0, "gamma_factor": 1.0}, {"C": 8.0, "gamma_factor": 0.25}],
    "rf": [{"max_features": "sqrt"}, {"max_features": 0.5, "min_samples_leaf": 3}],
    "xgboost": [{"learning_rate": 0.1, "max_depth": 3}, {"learning_rate": 0.1, "max_depth": 6}],
    "lightgbm": [{"num_leaves": 7, "min_child_samples": 5}, {"num_leaves": 31}],
    "catboost": [{"depth": 4}, {"depth": 6}],
    "hist_gb": [{"max_leaf_nodes": 7}, {"max_leaf_nodes": 31}],
    "logreg": [{"C": 0.1}, {"C": 1.0}],
    "knn": [{"n_neighbors": 5}, {"n_neighbors": 15, "weights": "distance"}],
    "mlp": [{"hidden_layer_sizes": (64,)}, {"hidden_layer_sizes": (128, 128), "alpha": 1e-2}],
}

METHODS: tuple[str, ...] = tuple(FULL)


def grid(method: str, mode: str) -> list[dict]:
    """The grid points of ``method`` for ``mode`` (``smoke`` = the first quick point only)."""
    if method not in FULL:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if mode == "full":
        return FULL[method]
    if mode == "quick":
        return QUICK[method]
    if mode == "smoke":
        return QUICK[method][:1]
    raise ValueError(f"mode must be one of ['smoke', 'quick', 'full'], got {mode!r}")


def _hopfield(p: dict, seed: int, d: int, mode: str):
    from ..estimators.tabular import HopfieldClassifier

    extra = {"max_iter": 30, "n_members": 2} if mode == "smoke" else {}
    return HopfieldClassifier(random_state=seed, device="cpu", **{**extra, **p})


def _svm(p: dict, seed: int, d: int, mode: str):
    from sklearn.svm import SVC

    return SVC(C=p.get("C", 1.0), gamma=p.get("gamma_factor", 1.0) / d, random_state=seed)


def _rf(p: dict, seed: int, d: int, mode: str):
    from sklearn.ensemble import RandomForestClassifier

    n = {"smoke": 50, "quick": 200, "full": 500}[mode]
    return RandomForestClassifier(n_estimators=n, n_jobs=1, random_state=seed, **p)


def _xgb(p: dict, seed: int, d: int, mode: str):
    from xgboost import XGBClassifier

    n = 50 if mode == "smoke" else 300
    return XGBClassifier(n_estimators=n, nthread=1, random_state=seed, verbosity=0,
                         tree_method="hist", **p)


def _lgbm(p: dict, seed: int, d: int, mode: str):
    from lightgbm import LGBMClassifier

    n = 50 if mode == "smoke" else 300
    return LGBMClassifier(n_estimators=n, n_jobs=1, random_state=seed, verbose=-1,
                          deterministic=True, force_col_wise=True, **p)


def _cat(p: dict, seed: int, d: int, mode: str):
    from catboost import CatBoostClassifier

    n = 50 if mode == "smoke" else 300
    return CatBoostClassifier(iterations=n, thread_count=1, random_seed=seed, verbose=0,
                              allow_writing_files=False, **p)


def _hgb(p: dict, seed: int, d: int, mode: str):
    from sklearn.ensemble import HistGradientBoostingClassifier

    n = 50 if mode == "smoke" else 300
    return HistGradientBoostingClassifier(max_iter=n, early_stopping=False, random_state=seed, **p)


def _logreg(p: dict, seed: int, d: int, mode: str):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000, random_state=seed, **p)


def _knn(p: dict, seed: int, d: int, mode: str):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_jobs=1, **p)


def _mlp(p: dict, seed: int, d: int, mode: str):
    from sklearn.neural_network import MLPClassifier

    n = 100 if mode == "smoke" else 500
    return MLPClassifier(max_iter=n, early_stopping=True, n_iter_no_change=20,
                         random_state=seed, **p)


_FACTORIES: dict[str, Callable] = {
    "hopfield": _hopfield, "svm_rbf": _svm, "rf": _rf, "xgboost": _xgb, "lightgbm": _lgbm,
    "catboost": _cat, "hist_gb": _hgb, "logreg": _logreg, "knn": _knn, "mlp": _mlp,
}  # fmt: skip


def make(method: str, params: dict, *, seed: int, n_features: int, mode: str):
    """A fresh, unfitted estimator of ``method`` with grid point ``params``."""
    if method not in _FACTORIES:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return _FACTORIES[method](dict(params), seed, n_features, mode)
