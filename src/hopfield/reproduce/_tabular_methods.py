"""The tabular benchmark's methods: search spaces, model factory and the tuning loop.

Part of :mod:`hopfield.reproduce.tabular`: :func:`_space` is each method's Optuna search space,
:func:`_make` builds the estimator for a parameter set (one thread per fit), :func:`_tune` runs
the trials of one cell (trial 0 = the method's defaults, enqueued), scoring each on the
validation rows and recording wall and CPU seconds and the peak extra RSS (:class:`_PeakRSS`).
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np

#: the benchmark's methods, in report order
METHODS: tuple[str, ...] = ("hopular", "hopfield", "catboost", "xgboost", "lightgbm", "hist_gb",
                            "rf", "svm", "knn")


def _space(method: str, trial, task: str, d: int) -> dict:
    """Optuna search space of ``method`` (the defaults trial is enqueued separately)."""
    f, i, c = trial.suggest_float, trial.suggest_int, trial.suggest_categorical
    if method == "hopular":
        return {"learning_rate": f("learning_rate", 1e-4, 1e-2, log=True),
                "dropout": f("dropout", 0.0, 0.3), "mask_probability": f("mask_probability",
                                                                         0.05, 0.3),
                "embedding_size": c("embedding_size", [16, 32]),
                "num_blocks": c("num_blocks", [2, 4])}
    if method == "hopfield":
        return {"learning_rate": f("learning_rate", 3e-4, 1e-2, log=True),
                "dropout": f("dropout", 0.0, 0.3), "quantity": c("quantity", [8, 32, 64])}
    if method == "catboost":
        return {"learning_rate": f("learning_rate", 0.01, 0.3, log=True), "depth": i("depth", 4, 8),
                "l2_leaf_reg": f("l2_leaf_reg", 1.0, 10.0, log=True)}
    if method == "xgboost":
        return {"learning_rate": f("learning_rate", 0.01, 0.3, log=True),
                "max_depth": i("max_depth", 3, 10), "subsample": f("subsample", 0.6, 1.0),
                "colsample_bytree": f("colsample_bytree", 0.5, 1.0),
                "min_child_weight": f("min_child_weight", 1.0, 10.0, log=True)}
    if method == "lightgbm":
        return {"learning_rate": f("learning_rate", 0.01, 0.3, log=True),
                "num_leaves": i("num_leaves", 7, 127, log=True),
                "min_child_samples": i("min_child_samples", 5, 50),
                "colsample_bytree": f("colsample_bytree", 0.5, 1.0)}
    if method == "hist_gb":
        return {"learning_rate": f("learning_rate", 0.01, 0.3, log=True),
                "max_leaf_nodes": i("max_leaf_nodes", 7, 127, log=True),
                "l2_regularization": f("l2_regularization", 1e-3, 10.0, log=True),
                "min_samples_leaf": i("min_samples_leaf", 5, 50)}
    if method == "rf":
        return {"max_features": f("max_features", 0.1, 1.0),
                "min_samples_leaf": i("min_samples_leaf", 1, 10)}
    if method == "svm":
        return {"C": f("C", 0.1, 100.0, log=True), "gamma_factor": f("gamma_factor", 0.1, 10.0,
                                                                     log=True)}
    if method == "knn":
        return {"n_neighbors": i("n_neighbors", 1, 50, log=True),
                "weights": c("weights", ["uniform", "distance"])}
    raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")


def _make(method: str, p: dict, task: str, seed: int, d: int, mode: str):
    """A fresh estimator of ``method`` with parameters ``p`` ({} = the method's defaults)."""
    clf = task == "classification"
    smoke = mode == "smoke"
    n_boost = 50 if smoke else 500
    if method == "hopular":
        from ..estimators.hopular import HopularClassifier, HopularRegressor

        extra = {"max_iter": 4, "anneal_iter": 1, "embedding_size": 8, "num_blocks": 1,
                 "n_members": 1} if smoke else {}
        cls = HopularClassifier if clf else HopularRegressor
        return cls(random_state=seed, device="cpu", **{**extra, **p})
    if method == "hopfield":
        from ..estimators import HopfieldClassifier, HopfieldRegressor

        extra = {"max_iter": 10, "n_members": 1} if smoke else {}
        cls = HopfieldClassifier if clf else HopfieldRegressor
        return cls(random_state=seed, device="cpu", **{**extra, **p})
    if method == "catboost":
        from catboost import CatBoostClassifier, CatBoostRegressor

        cls = CatBoostClassifier if clf else CatBoostRegressor
        return cls(iterations=n_boost, thread_count=1, random_seed=seed, verbose=0,
                   allow_writing_files=False, **p)
    if method == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        cls = XGBClassifier if clf else XGBRegressor
        return cls(n_estimators=n_boost, nthread=1, random_state=seed, verbosity=0,
                   tree_method="hist", **p)
    if method == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMClassifier if clf else LGBMRegressor
        return cls(n_estimators=n_boost, n_jobs=1, random_state=seed, verbose=-1,
                   deterministic=True, force_col_wise=True, **p)
    if method == "hist_gb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
        return cls(max_iter=n_boost, random_state=seed, **p)
    if method == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(n_estimators=50 if smoke else 300, n_jobs=1, random_state=seed, **p)
    if method == "svm":  # on standardised features (training statistics)
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC, SVR

        p = dict(p)
        gamma = p.pop("gamma_factor", 1.0) / d
        svm = SVC(gamma=gamma, random_state=seed, **p) if clf else SVR(gamma=gamma, **p)
        return make_pipeline(StandardScaler(), svm)
    if method == "knn":
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        knn = (KNeighborsClassifier if clf else KNeighborsRegressor)(n_jobs=1, **p)
        return make_pipeline(StandardScaler(), knn)
    raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")


_NEEDS_IMPUTE = ("svm", "knn", "hopfield")


class _PeakRSS:
    """Peak extra resident memory (bytes) of this process while the block runs (Linux)."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _watch(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        self.extra = max(0, self.peak - self.base)


def _score(task: str, y, pred) -> float:
    """Higher is better: accuracy, or −RMSE."""
    if task == "classification":
        return float(np.mean(np.asarray(pred).ravel() == y))
    return -float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64).ravel() - y) ** 2)))


def _tune(method: str, task: str, data: dict, seed: int, mode: str, n_trials: int) -> dict:
    """Optuna study (trial 0 = defaults); returns the record of one (dataset, split, method)."""
    import optuna

    Xtr, ytr, Xva, yva, Xte, yte = data["frame" if method == "hopular" else
                                        ("imputed" if method in _NEEDS_IMPUTE else "numeric")]
    d = Xtr.shape[1]
    trials: list[dict] = []

    def objective(trial):
        p = {} if trial.number == 0 else _space(method, trial, task, d)
        est = _make(method, p, task, seed, d, mode)
        with warnings.catch_warnings(), _PeakRSS() as mem:
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            est.fit(Xtr, ytr)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            val = _score(task, yva, est.predict(Xva))
            test = _score(task, yte, est.predict(Xte))
        trials.append({"params": p, "val": val, "test": test, "seconds": secs,
                       "cpu_seconds": cpu, "peak_bytes": mem.extra})
        return val

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({})  # trial 0: defaults (objective ignores the suggestion)
    study.optimize(objective, n_trials=n_trials)
    best = int(np.argmax([t["val"] for t in trials]))  # first maximum on ties
    return {"method": method, "task": task, "best_params": trials[best]["params"],
            "val": trials[best]["val"], "test": trials[best]["test"],
            "default_test": trials[0]["test"], "seconds": sum(t["seconds"] for t in trials),
            "default_seconds": trials[0]["seconds"],
            "cpu_seconds": sum(t["cpu_seconds"] for t in trials),
            "peak_bytes": max(t["peak_bytes"] for t in trials), "trials": trials}


