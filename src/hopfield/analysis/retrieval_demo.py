"""Retrieval of real images by every memory: the library side of ``hopfield demo``.

The images are scikit-learn's bundled handwritten digits (8×8, grey levels 0..16, shipped with
scikit-learn, no download). Each stored image is binarised to ±1 (pixel ≥ 8 → +1, ink; else −1,
background), so every memory stores exactly the same D = 64 bipolar patterns. Queries are corrupted
copies of the stored images, identical for every method:

    mask    the bottom half of the image is erased (set to background, −1)
    flip    each pixel is flipped with probability 0.15
    noise   Gaussian noise (σ = 4 grey levels) is added to the grey image before binarising

Accuracy (defined once, used in the table, the JSON and docs/memories.md):

    nearest   the stored pattern with the largest overlap x_μᵀξ with the retrieved state ξ is the
              image the query was made from (ties count as wrong)
    exact     sign(ξ) equals that stored image in all 64 pixels

:func:`run_demo` is deterministic for a seed (same table, same JSON). The CLI
(:mod:`hopfield.cli.demo`) only parses options, calls :func:`run_demo`, writes and prints.

Shape legend: N stored images, L queries, D = 64 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write

__all__ = ["BETAS", "BETAS_QUICK", "CORRUPTIONS", "MAX_PATTERNS", "DemoResult", "binarise",
           "corrupt", "load_patterns", "make_methods", "run_demo", "save_figure", "score"]

CORRUPTIONS = ("mask", "flip", "noise")
FLIP_P = 0.15
NOISE_SIGMA = 4.0
BETAS = (0.03, 0.1, 0.15, 0.2, 0.5, 2.0)
BETAS_QUICK = (0.03, 0.2, 2.0)
# Images are taken from classes 0..9 in turn; class 8 has the fewest (174), so the round-robin
# pick runs out after 10 * 174 + 8 = 1748 images.
MAX_PATTERNS = 1748


@dataclass
class DemoResult:
    """The demo's table: one row per (method, corruption)."""

    config: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def accuracy(self, method: str, corruption: str, metric: str = "nearest") -> float:
        for r in self.rows:
            if r["method"] == method and r["corruption"] == corruption:
                return float(r[metric])
        raise KeyError(f"no row for method={method!r}, corruption={corruption!r}")

    def table(self) -> str:
        """Markdown table: methods × corruptions, ``nearest / exact`` accuracy in %."""
        methods = list(dict.fromkeys(r["method"] for r in self.rows))
        head = "| method | " + " | ".join(f"{c} (nearest / exact)" for c in CORRUPTIONS) + " |"
        lines = [head, "|---" * (len(CORRUPTIONS) + 1) + "|"]
        for m in methods:
            cells = [f"{100 * self.accuracy(m, c):5.1f} / {100 * self.accuracy(m, c, 'exact'):5.1f}"
                     for c in CORRUPTIONS]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> Path:
        """Write the configuration and the rows as JSON (atomically); returns the path."""
        import json
        from dataclasses import asdict

        payload = json.dumps(asdict(self), indent=2) + "\n"
        return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(payload, encoding="utf-8"))


# ----------------------------------------------------------------------------- data


def load_patterns(n_patterns: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``n_patterns`` digit images, classes 0..9 in turn; returns (grey (N, D), labels
    (N,))."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey, labels = digits.images.reshape(len(digits.images), -1), digits.target
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(10)]
    idx = np.array([by_class[i % 10][i // 10] for i in range(n_patterns)])
    return grey[idx].astype(np.float64), labels[idx]


def binarise(grey: np.ndarray) -> np.ndarray:
    """±1 pixels: +1 (ink) where the grey level is >= 8, else -1 (background); float32."""
    return np.where(grey >= 8.0, 1.0, -1.0).astype(np.float32)


def corrupt(grey: np.ndarray, kind: str, repeats: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Corrupted ±1 queries (L, D) and the index of the stored image each was made from (L,).

    ``kind`` is one of :data:`CORRUPTIONS`; ``mask`` gives one query per image, ``flip`` and
    ``noise`` give ``repeats`` queries per image.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {list(CORRUPTIONS)}, got {kind!r}")
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or not np.isfinite(grey).all():
        raise ValueError(f"grey must be a finite array of shape (N, D), got shape {grey.shape}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    n, d = grey.shape
    if kind == "mask":  # deterministic: one query per image
        q = binarise(grey)
        q[:, d // 2:] = -1.0
        return q, np.arange(n)
    target = np.repeat(np.arange(n), repeats)
    if kind == "flip":
        q = binarise(grey[target])
        q[rng.random(q.shape) < FLIP_P] *= -1.0
    else:
        q = binarise(grey[target] + rng.normal(0.0, NOISE_SIGMA, size=(len(target), d)))
    return q, target


# ----------------------------------------------------------------------------- methods


def make_methods(betas: tuple[float, ...], seed: int) -> dict[str, Any]:
    """Name -> unfitted memory: classical (Hebbian, Storkey), dense (n=3, 4, exponential), modern
    per β."""
    from ..memory import ClassicalHopfield, DenseAssociativeMemory, ModernHopfield

    methods: dict[str, Any] = {
        "classical hebbian": ClassicalHopfield("hebbian", random_state=seed),
        "classical storkey": ClassicalHopfield("storkey", random_state=seed),
        "dense polynomial n=3": DenseAssociativeMemory("polynomial", 3, random_state=seed),
        "dense polynomial n=4": DenseAssociativeMemory("polynomial", 4, random_state=seed),
        "dense exponential": DenseAssociativeMemory("exponential", random_state=seed),
    }
    for b in betas:
        methods[f"modern beta={b:g}"] = ModernHopfield(beta=b)
    return methods


def score(retrieved: np.ndarray, patterns: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """``nearest``, ``exact`` and ``pixel`` accuracy of retrieved states (L, D) against the
    stored ``patterns`` (N, D), ``target`` (L,) being the index each query was made from."""
    retrieved = np.asarray(retrieved, dtype=np.float64)
    patterns = np.asarray(patterns, dtype=np.float64)
    target = np.asarray(target)
    if (retrieved.ndim != 2 or patterns.ndim != 2 or retrieved.shape[1] != patterns.shape[1]
            or target.shape != (len(retrieved),)):
        raise ValueError(f"retrieved (L, D), patterns (N, D) and target (L,) must agree, got "
                         f"{retrieved.shape}, {patterns.shape} and {target.shape}")
    if len(retrieved) == 0:
        raise ValueError("retrieved must hold at least one state, got L = 0")
    overlap = retrieved @ patterns.T  # (L, N)
    best = overlap.max(axis=1, keepdims=True)
    unique_best = (overlap == best).sum(axis=1) == 1
    nearest = unique_best & (overlap.argmax(axis=1) == target)
    exact = (np.sign(retrieved) == patterns[target]).all(axis=1)
    pixels = (np.sign(retrieved) == patterns[target]).mean()
    return {"nearest": float(nearest.mean()), "exact": float(exact.mean()),
            "pixel": float(pixels)}


def run_demo(n_patterns: int = 20, seed: int = 0, quick: bool = False,
             progress: bool = True) -> tuple[DemoResult, dict[str, Any]]:
    """Run every method on every corruption; returns the table and the arrays for the figure.

    Deterministic for a seed: the same arguments give the same table (what ``hopfield demo`` prints
    and docs/memories.md quotes). ``quick`` uses 2 instead of 5 queries per image for ``flip`` and
    ``noise`` and three β values instead of six.
    """
    if isinstance(n_patterns, bool) or not isinstance(n_patterns, (int, np.integer)) \
            or not 2 <= n_patterns <= MAX_PATTERNS:
        raise ValueError(f"n_patterns must be an int in [2, {MAX_PATTERNS}] (classes 0..9 in turn "
                         f"from the digits set), got {n_patterns!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    import torch
    from tqdm.auto import tqdm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than contending for cores
    try:
        return _run(n_patterns, seed, quick, progress, tqdm)
    finally:
        torch.set_num_threads(threads)


def _run(n_patterns: int, seed: int, quick: bool, progress: bool,
         tqdm: Any) -> tuple[DemoResult, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    repeats = 2 if quick else 5
    betas = BETAS_QUICK if quick else BETAS
    grey, labels = load_patterns(n_patterns, rng)
    patterns = binarise(grey)  # (N, D)
    queries = {k: corrupt(grey, k, repeats, rng) for k in CORRUPTIONS}
    methods = make_methods(betas, seed)
    config = {"dataset": "sklearn digits 8x8, binarised at grey level 8", "n_patterns": n_patterns,
              "labels": labels.tolist(), "seed": seed, "quick": quick,
              "queries_per_image": {"mask": 1, "flip": repeats, "noise": repeats},
              "flip_probability": FLIP_P, "noise_sigma_grey_levels": NOISE_SIGMA,
              "betas": list(betas), "metrics": {
                  "nearest": "stored image with the largest overlap with the retrieved state is "
                             "the source image (ties count as wrong)",
                  "exact": "sign(retrieved) equals the source image in all 64 pixels",
                  "pixel": "fraction of pixels where sign(retrieved) equals the source image"}}
    result = DemoResult(config=config)
    retrieved: dict[tuple[str, str], np.ndarray] = {}
    jobs = [(m, c) for m in methods for c in CORRUPTIONS]
    for name, kind in tqdm(jobs, desc="hopfield demo", disable=not progress, leave=False):
        mem = methods[name].store(patterns)
        q, target = queries[kind]
        out = np.asarray(mem.retrieve(q), dtype=np.float64)
        retrieved[name, kind] = out
        result.rows.append({"method": name, "corruption": kind, "n_queries": len(q),
                            **score(out, patterns.astype(np.float64), target)})
    arrays = {"patterns": patterns, "queries": queries, "retrieved": retrieved,
              "methods": list(methods)}
    return result, arrays


# ----------------------------------------------------------------------------- output


def save_figure(arrays: dict[str, Any], path: Path, n_examples: int = 5) -> None:
    """Mosaic: for each corruption, columns = examples; rows = original, corrupted, each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = arrays["methods"]
    rows = ["original", "corrupted", *methods]
    n_ex = min(n_examples, len(arrays["patterns"]))
    tile, gap = 8, 2
    cols = len(CORRUPTIONS) * (n_ex + 1) - 1  # one blank column between corruption blocks
    canvas = np.full((len(rows) * (tile + gap), cols * (tile + gap)), np.nan)  # NaN = blank
    for b, kind in enumerate(CORRUPTIONS):
        q, target = arrays["queries"][kind]
        picks = [int(np.flatnonzero(target == t)[0]) for t in range(n_ex)]
        for j, qi in enumerate(picks):
            col = (b * (n_ex + 1) + j) * (tile + gap)
            images = [arrays["patterns"][target[qi]], q[qi],
                      *[arrays["retrieved"][m, kind][qi] for m in methods]]
            for r, img in enumerate(images):
                row = r * (tile + gap)
                canvas[row:row + tile, col:col + tile] = np.asarray(img).reshape(tile, tile)
    fig, ax = plt.subplots(figsize=(0.5 * cols + 2.0, 0.5 * len(rows) + 0.5))
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(canvas), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    for r, label in enumerate(rows):
        ax.text(-2, r * (tile + gap) + tile / 2, label, ha="right", va="center", fontsize=8)
    for b, kind in enumerate(CORRUPTIONS):
        ax.text(b * (n_ex + 1) * (tile + gap), -2, kind, ha="left", va="bottom", fontsize=9)
    ax.set_axis_off()
    fig.subplots_adjust(left=0.17, right=0.99, top=0.95, bottom=0.01)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
