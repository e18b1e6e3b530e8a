"""Suite ``tabular``: fit time of Hopular next to scikit-learn's ``HistGradientBoostingClassifier``.

Issue 9's measurement: ``sklearn.datasets.make_classification(n_samples=50_000, n_features=50,
random_state=0)``, an 80/20 split (seed 0), ``HopularClassifier(random_state=0).fit`` vs
``HistGradientBoostingClassifier(random_state=0).fit`` on the 40,000 training rows, with the
runner's thread count (torch threads and ``OMP_NUM_THREADS`` for HistGB). Target of the issue:
Hopular fits in ≤ 5 minutes on 2 cores with bounded memory; the ratio to HistGB is reported (no
target). ``--quick``: 1,000 × 10 (a smoke run). A fit is long, so each peer is timed once, without a
warm-up; the held-out accuracy of each fitted model is reported beside the time.
"""

from __future__ import annotations

from typing import Any

from ._core import Bench, Case, Ratio, Unavailable

__all__ = ["cases", "derive", "setup"]


def cases(quick: bool) -> list[Case]:
    n, d = (1_000, 10) if quick else (50_000, 50)
    cfg = {"n_samples": n, "n_features": d, "seed": 0, "test_size": 0.2}
    return [Case("tabular", f"make_classification {n:,} x {d}", cfg, ("hopular", "histgb"),
                 (Ratio("hopular", "histgb", "time"), Ratio("hopular", "histgb", "memory")),
                 max_repeats=1, warmup=False)]


def _data(cfg: dict[str, Any]):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(n_samples=cfg["n_samples"], n_features=cfg["n_features"],
                               random_state=cfg["seed"])
    return train_test_split(X, y, test_size=cfg["test_size"], random_state=cfg["seed"])


def setup(cfg: dict[str, Any], peer: str) -> Bench:
    X_tr, X_te, y_tr, y_te = _data(cfg)
    if peer == "hopular":
        try:
            from hopfield.estimators.hopular import HopularClassifier
        except ImportError as err:
            raise Unavailable(f"HopularClassifier is not importable ({err})") from None
        make = lambda: HopularClassifier(random_state=cfg["seed"])
    elif peer == "histgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        make = lambda: HistGradientBoostingClassifier(random_state=cfg["seed"])
    else:
        raise ValueError(f"unknown peer {peer!r} for suite tabular")
    info: dict[str, Any] = {"n_train": len(X_tr), "n_test": len(X_te)}

    def fit() -> None:
        model = make().fit(X_tr, y_tr)
        info["test_accuracy"] = float(model.score(X_te, y_te))

    return Bench(fit, info)


def derive(case: Case, record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for peer, res in record.get("time", {}).items():
        if res.get("median"):
            out[f"{peer} fit s"] = res["median"]
    return out
