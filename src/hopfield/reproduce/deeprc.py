"""``hopfield reproduce deeprc``: immune-repertoire classification on simulated repertoires.

Simulated benchmark (:func:`hopfield.repertoire.simulate_repertoires`; one motif of 4 amino acids
with 10 % per-position substitution noise unless stated) at witness rates 1 %, 0.1 % and 0.01 %,
plus a multi-motif setting (3 motifs at 0.1 %). Every method runs on the same stratified folds:

- ``deeprc`` — :class:`hopfield.repertoire.DeepRCClassifier` (CNN -> multi-head Hopfield pooling);
- ``kmer_l1lr`` — 4-mer frequencies + L1 logistic regression, C by inner 3-fold CV (ROC AUC);
- ``kmer_svm`` — 4-mer frequencies + linear SVM, C by inner 3-fold CV;
- ``oracle`` — fraction of sequences containing a true motif exactly (knows the motifs).

Reported per setting: ROC AUC (mean ± std over folds), motif recovery (DeepRC: precision of true
witnesses among the top-attended 0.1 % of the sequences of each positive test repertoire; k-mer
L1-LR: share of its top-m positive k-mers that occur in a true motif, m = number of distinct
motif k-mers), fit and predict time. A separate subprocess measures DeepRC inference on one
300,000-sequence repertoire read from the converted on-disk store (time, peak RSS).

Protocols (:data:`PROTOCOLS`): ``smoke`` (tests: tiny), ``quick`` (a few minutes), ``full``.
Every finished (setting, fold, method) is cached as JSON under
``out_dir/deeprc/folds/<mode>-seed<seed>/`` (atomic writes) and a rerun skips it. Files:
``results.csv``, ``summary.csv``, ``deeprc.json``, ``auc.png``, ``attention.png``, ``scale.json``.
"""

from __future__ import annotations

import csv
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np

from .._io import atomic_savefig, atomic_write_json, atomic_write_text
from . import check_run_args
from .report import markdown_table

__all__ = ["METHODS", "PROTOCOLS", "SETTINGS", "run"]

#: name -> label
METHODS = {"deeprc": "DeepRC (Hopfield pooling)", "kmer_l1lr": "4-mer + L1 log. regression",
           "kmer_svm": "4-mer + linear SVM", "oracle": "known-motif oracle"}

#: setting -> (label, simulate_repertoires keyword arguments)
SETTINGS = {
    "wr1": ("1 motif, witness rate 1 %", {"witness_rate": 0.01}),
    "wr0.1": ("1 motif, witness rate 0.1 %", {"witness_rate": 0.001}),
    "wr0.01": ("1 motif, witness rate 0.01 %", {"witness_rate": 0.0001}),
    "multi": ("3 motifs, witness rate 0.1 %", {"witness_rate": 0.001, "n_motifs": 3}),
}
_NOISE = {"motif_length": 4, "substitution_rate": 0.1}

_DEEPRC = {"num_threads": 1}
PROTOCOLS: dict[str, dict] = {
    "smoke": {"settings": ("wr1",), "n_repertoires": 16, "n_sequences": 400, "folds": 2,
              "deeprc": {"max_iter": 2, "n_train_sequences": 128, "early_stopping": False,
                         "pretrain_steps": 10},
              "kmer": {"Cs": (0.1, 1.0), "cv": 2}, "scale_sequences": 20_000},
    "quick": {"settings": tuple(SETTINGS), "n_repertoires": 40, "n_sequences": 5_000,
              "folds": 3, "deeprc": {"max_iter": 4, "pretrain_steps": 150},
              "kmer": {"Cs": (0.03, 0.1, 0.3, 1.0)},
              "scale_sequences": 300_000},
    "full": {"settings": tuple(SETTINGS), "n_repertoires": 100, "n_sequences": 10_000,
             "folds": 5, "deeprc": {"max_iter": 10, "pretrain_steps": 500}, "kmer": {},
             "scale_sequences": 300_000},
}
_BINS = np.linspace(-9, 0, 37)  # log10 attention weight bins


def _dataset(setting: str, mode: str, seed: int):
    from ..repertoire import simulate_repertoires

    proto = PROTOCOLS[mode]
    kw = {**_NOISE, **SETTINGS[setting][1]}
    if mode == "smoke":
        kw["witness_rate"] = max(kw["witness_rate"], 0.01)
    return simulate_repertoires(proto["n_repertoires"], proto["n_sequences"], seed=seed, **kw)


def _make(method: str, mode: str, seed: int, motifs):
    from ..repertoire import DeepRCClassifier, KmerClassifier, MotifOracle

    proto = PROTOCOLS[mode]
    if method == "deeprc":
        return DeepRCClassifier(**{**_DEEPRC, **proto["deeprc"]}, random_state=seed)
    if method == "oracle":
        return MotifOracle(list(motifs))
    model = "l1_logistic" if method == "kmer_l1lr" else "svm"
    return KmerClassifier(k=4, model=model, random_state=seed, **proto["kmer"])


def _motif_kmers(motifs, k: int) -> set[str]:
    return {m[i:i + k] for m in motifs for i in range(len(m) - k + 1)}


def _run_fold(method, mode, seed, ds, tr, te) -> dict:
    from sklearn.metrics import roc_auc_score

    est = _make(method, mode, seed, ds.motifs)
    R = ds.repertoires
    t0 = time.perf_counter()
    est.fit([R[i] for i in tr], ds.y[tr])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = est.decision_function([R[i] for i in te])
    pred_s = time.perf_counter() - t0
    rec = {"auc": float(roc_auc_score(ds.y[te], scores)), "fit_seconds": fit_s,
           "predict_seconds": pred_s, "recovery": None, "hist_witness": None,
           "hist_background": None}
    if method == "deeprc":
        pos = [i for i in te if ds.y[i] == 1]
        ws = est.sequence_weights([R[i] for i in pos])
        prec, hw, hb = [], np.zeros(len(_BINS) - 1), np.zeros(len(_BINS) - 1)
        for i, w in zip(pos, ws):
            k = max(1, round(0.001 * len(w)))
            top = np.argpartition(-w, k - 1)[:k]
            prec.append(float(ds.witness[i][top].mean()))
            lw = np.log10(np.maximum(w, 1e-12))
            hw += np.histogram(np.clip(lw[ds.witness[i]], -8.99, -1e-9), _BINS)[0]
            hb += np.histogram(np.clip(lw[~ds.witness[i]], -8.99, -1e-9), _BINS)[0]
        rec.update(recovery=float(np.mean(prec)), hist_witness=hw.tolist(),
                   hist_background=hb.tolist(), n_iter=int(est.n_iter_))
    elif method == "kmer_l1lr":
        true = _motif_kmers(ds.motifs, est.k)
        top = est.top_kmers(len(true))
        rec["recovery"] = float(np.mean([t in true for t in top])) if top else 0.0
        rec["top_kmers"] = top
    return rec


def run(out_dir: Path, *, mode: str = "quick", seed: int = 0, data_dir=None,
        settings: tuple[str, ...] | None = None, methods: tuple[str, ...] | None = None,
        scale: bool = True) -> str:
    """Run the simulated DeepRC benchmark; write files under ``out_dir/deeprc/``; return markdown.

    ``data_dir`` is unused (the data are simulated, deterministically from ``seed``).
    """
    from sklearn.model_selection import StratifiedKFold
    from tqdm.auto import tqdm

    check_run_args(mode, PROTOCOLS, seed)
    proto = PROTOCOLS[mode]
    settings = tuple(proto["settings"] if settings is None else settings)
    methods = tuple(METHODS if methods is None else methods)
    if not settings or any(s not in SETTINGS for s in settings):
        raise ValueError(f"settings must be a non-empty subset of {list(SETTINGS)}, got {settings}")
    if not methods or any(m not in METHODS for m in methods):
        raise ValueError(f"methods must be a non-empty subset of {list(METHODS)}, got {methods}")
    out = Path(out_dir) / "deeprc"
    cache = out / "folds" / f"{mode}-seed{seed}"
    t_start, cpu_start = time.perf_counter(), time.process_time()
    data, tasks = {}, []
    for s in settings:
        data[s] = _dataset(s, mode, seed)
        skf = StratifiedKFold(proto["folds"], shuffle=True, random_state=seed)
        for f, (tr, te) in enumerate(skf.split(np.zeros(len(data[s].y)), data[s].y)):
            tasks += [(s, f, tr, te, m) for m in methods]
    rows = []
    bar = tqdm(tasks, desc=f"deeprc {mode}", unit="fold", dynamic_ncols=True)
    for s, f, tr, te, m in bar:
        path = cache / f"{s}__f{f}__{m}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text(encoding="utf-8")))
            continue
        bar.set_postfix_str(f"{s} f{f} {m}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = _run_fold(m, mode, seed * 1000 + f, data[s], tr, te)
        rec = {"setting": s, "fold": f, "method": m, **rec}
        atomic_write_json(path, rec, sort_keys=True)
        rows.append(rec)
    scale_rec = measure_scale(out, mode, seed) if scale and "deeprc" in methods else None
    return _report(out, mode, seed, settings, methods, rows, scale_rec,
                   time.perf_counter() - t_start, time.process_time() - cpu_start)


# ----------------------------------------------------------------------------- scale


def measure_scale(out: Path, mode: str, seed: int, threads: int = 1) -> dict:
    """Time DeepRC inference on one repertoire of the protocol's ``scale_sequences`` sequences
    in a fresh subprocess (peak RSS); see :mod:`hopfield.reproduce._deeprc_scale`."""
    from ._deeprc_scale import measure_scale as measure

    return measure(out, PROTOCOLS[mode]["scale_sequences"], seed, threads)


# ----------------------------------------------------------------------------- outputs


def summarize(rows, settings, methods) -> dict:
    table = {}
    for s in settings:
        table[s] = {}
        for m in methods:
            rs = [r for r in rows if r["setting"] == s and r["method"] == m]
            auc = [r["auc"] for r in rs]
            rec = [r["recovery"] for r in rs if r.get("recovery") is not None]
            table[s][m] = {"auc": float(np.mean(auc)), "auc_std": float(np.std(auc)),
                           "n_folds": len(rs),
                           "recovery": float(np.mean(rec)) if rec else None,
                           "fit_seconds": float(np.mean([r["fit_seconds"] for r in rs])),
                           "predict_seconds": float(np.mean([r["predict_seconds"] for r in rs]))}
    return table


def _plots(out: Path, table, rows, settings, methods) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [s for s in ("wr1", "wr0.1", "wr0.01") if s in settings]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    if rates:
        x = [SETTINGS[s][1]["witness_rate"] * 100 for s in rates]
        for m in methods:
            ax.errorbar(x, [table[s][m]["auc"] for s in rates],
                        yerr=[table[s][m]["auc_std"] for s in rates], marker="o", capsize=3,
                        label=METHODS[m])
        ax.set_xscale("log")
        ax.set_xlabel("witness rate (%)")
    ax.set_ylabel("ROC AUC")
    ax.set_title("Simulated repertoires: AUC vs witness rate")
    ax.legend(fontsize=7)
    atomic_savefig(fig, out / "auc.png")
    fig, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3.0), squeeze=False)
    centers = (_BINS[:-1] + _BINS[1:]) / 2
    for ax, s in zip(axes[0], settings):
        rs = [r for r in rows if r["setting"] == s and r["method"] == "deeprc"
              and r.get("hist_witness")]
        if rs:
            hw = np.sum([r["hist_witness"] for r in rs], 0)
            hb = np.sum([r["hist_background"] for r in rs], 0)
            ax.step(centers, hb / max(hb.sum(), 1), where="mid", label="background")
            ax.step(centers, hw / max(hw.sum(), 1), where="mid", label="witness")
        ax.set_title(SETTINGS[s][0], fontsize=8)
        ax.set_xlabel("log10 attention weight")
    axes[0][0].set_ylabel("share of sequences")
    axes[0][0].legend(fontsize=7)
    atomic_savefig(fig, out / "attention.png")


def _report(out, mode, seed, settings, methods, rows, scale_rec, elapsed, cpu) -> str:
    proto = PROTOCOLS[mode]
    table = summarize(rows, settings, methods)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["setting", "fold", "method", "auc", "recovery", "fit_seconds", "predict_seconds"])
    for r in sorted(rows, key=lambda r: (r["setting"], r["fold"], r["method"])):
        w.writerow([r["setting"], r["fold"], r["method"], f"{r['auc']:.6f}",
                    "" if r.get("recovery") is None else f"{r['recovery']:.4f}",
                    f"{r['fit_seconds']:.2f}", f"{r['predict_seconds']:.3f}"])
    atomic_write_text(out / "results.csv", buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["setting", "method", "auc_mean", "auc_std", "n_folds", "recovery",
                "fit_seconds", "predict_seconds"])
    for s in settings:
        for m in methods:
            t = table[s][m]
            w.writerow([s, m, f"{t['auc']:.4f}", f"{t['auc_std']:.4f}", t["n_folds"],
                        "" if t["recovery"] is None else f"{t['recovery']:.4f}",
                        f"{t['fit_seconds']:.2f}", f"{t['predict_seconds']:.3f}"])
    atomic_write_text(out / "summary.csv", buf.getvalue())
    atomic_write_json(out / "deeprc.json", {"mode": mode, "seed": seed, "protocol": proto,
                                            "settings": list(settings), "methods": list(methods),
                                            "summary": table, "folds": rows, "scale": scale_rec,
                                            "seconds": elapsed, "cpu_seconds": cpu},
                      sort_keys=True)
    _plots(out, table, rows, settings, methods)
    header = ["setting", "witnesses / positive rep."] + [METHODS[m] for m in methods]
    body = []
    for s in settings:
        best = max(table[s][m]["auc"] for m in methods if m != "oracle") \
            if any(m != "oracle" for m in methods) else None
        cells = []
        for m in methods:
            t = table[s][m]
            c = f"{t['auc']:.3f} ± {t['auc_std']:.3f}"
            cells.append(f"**{c}**" if m != "oracle" and t["auc"] == best else c)
        rate = SETTINGS[s][1]["witness_rate"] if mode != "smoke" else \
            max(SETTINGS[s][1]["witness_rate"], 0.01)
        body.append([SETTINGS[s][0], max(1, round(rate * proto["n_sequences"]))] + cells)
    rec_rows = []
    for s in settings:
        cells = []
        for m in ("deeprc", "kmer_l1lr"):
            r = table[s].get(m, {}).get("recovery") if m in methods else None
            cells.append("n/a" if r is None else f"{100 * r:.0f} %")
        times = [f"{table[s][m]['fit_seconds']:.1f} / {table[s][m]['predict_seconds']:.2f}"
                 for m in methods]
        rec_rows.append([SETTINGS[s][0]] + cells + times)
    lines = [
        "## Immune-repertoire classification, simulated (DeepRC)", "",
        (f"Mode `{mode}`, seed {seed}: {proto['n_repertoires']} repertoires of "
         f"{proto['n_sequences']:,} sequences per setting (half positive), stratified "
         f"{proto['folds']}-fold CV, the same folds for every method; ROC AUC mean ± std over "
         f"folds (best non-oracle method in bold). Motif: 4 amino acids, 10 % substitution noise "
         f"per position. This invocation: {elapsed / 60:.1f} min wall, {cpu / 60:.1f} min CPU "
         f"(folds cached by an earlier run are not refitted)."), "",
        markdown_table(header, body), "",
        "Motif recovery and time (fit / predict seconds per fold, mean):", "",
        markdown_table(["setting", "DeepRC: witnesses in top 0.1 % attended",
                        "L1-LR: top k-mers in a motif"] + [f"{METHODS[m]} s" for m in methods],
                       rec_rows), "",
        "![AUC vs witness rate](deeprc/auc.png) ![attention weights](deeprc/attention.png)", "",
    ]
    if scale_rec:
        lines += [
            (f"Scale: DeepRC inference on one repertoire of {scale_rec['n_sequences']:,} "
             f"sequences (memory-mapped converted store, {scale_rec['threads']} torch thread(s)): "
             f"{scale_rec['seconds']:.2f} s ({scale_rec['sequences_per_second']:,.0f} "
             "sequences/s, best of 3; exact per-sequence weights "
             f"{scale_rec['weights_seconds']:.2f} s); process peak RSS "
             f"{scale_rec['peak_rss_mib']:.0f} MiB, resident {scale_rec['rss_before_mib']:.0f} "
             "MiB just before the timed calls (Python, torch, the library, a saved model loaded "
             "with `DeepRCClassifier.load`, one warm-up pass). Arithmetic "
             f"{scale_rec['achieved_gflops']:.2f} GFLOP/s = "
             f"{100 * scale_rec['roofline_ratio']:.1f} % of this machine's measured 1024² matmul "
             f"rate ({scale_rec['matmul_gflops']:.1f} GFLOP/s); the lookups are memory-bound. "
             f"Load average during the run: {scale_rec['load_average']:.1f} (shared machine)."), ""]
    lines += [("Files: `deeprc/results.csv`, `deeprc/summary.csv`, `deeprc/deeprc.json`, "
               "`deeprc/scale.json`, `deeprc/auc.png`, `deeprc/attention.png`; "
               "`deeprc/scale_data_<n>/` holds the simulated big repertoire (DeepRC layout and its "
               "converted store, reused by reruns)."), ""]
    return "\n".join(lines)
