"""``DeepRCClassifier``: immune-repertoire classification with Hopfield pooling (DeepRC).

A repertoire is a bag of N amino-acid sequences (N up to ~300,000); the label belongs to the
repertoire. The network (:mod:`hopfield.repertoire.network`) embeds every sequence with a 1-D CNN
(one-hot + positional features), pools all N embeddings with a multi-head ``HopfieldPooling``
(one learned query; softmax over all sequences) and classifies the pooled vector.

Training on a CPU uses the reference implementation's trick (Widrich et al. 2020): for each
training repertoire an inference pass without gradients scores every sequence (chunked), and the
gradient pass runs on ``n_train_sequences`` of them: the ``top_fraction`` most attended plus a
uniform random sample of the rest (so sequences the network does not attend to yet still get
seen). Training memory is therefore bounded by ``n_train_sequences`` and ``chunk_size``,
independently of the repertoire size. Inference is exact over all sequences: the pooling's
softmax is accumulated chunk by chunk with :class:`hopfield.streaming.SoftmaxPartial`, so a
300,000-sequence repertoire needs memory for ``chunk_size`` sequences only.

Example::

    from hopfield.repertoire import DeepRCClassifier, simulate_repertoires
    ds = simulate_repertoires(40, 500, witness_rate=0.02, seed=0)
    clf = DeepRCClassifier(max_iter=5, random_state=0).fit(ds.repertoires[:30], ds.y[:30])
    proba = clf.predict_proba(ds.repertoires[30:])        # (10, 2)
    w = clf.sequence_weights(ds.repertoires[30:])          # list of (N_i,) weights, each sums to 1
"""

from __future__ import annotations

import importlib
import math
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..estimators._base import _threads
from ..estimators._io import load_state, save_state
from ..streaming import SoftmaxPartial
from ._training import DeepRCTraining
from .data import Repertoire, as_repertoires
from .network import DeepRCNet, length_groups, pool_finish, pool_partial, pool_scores

__all__ = ["DeepRCClassifier"]


_INT_PARAMS = {"n_kernels": 1, "kernel_size": 1, "embedding_size": 1, "num_heads": 1,
               "head_size": 1, "max_length": 1, "n_train_sequences": 1, "max_iter": 1,
               "batch_size": 1, "n_iter_no_change": 1, "chunk_size": 1, "pretrain_steps": 0,
               "kmer_init": 0}


class DeepRCClassifier(DeepRCTraining, ClassifierMixin, BaseEstimator):
    """DeepRC: CNN sequence embedding -> multi-head Hopfield pooling -> output network.

    Parameters:
        n_kernels, kernel_size: the sequence CNN (K kernels of width k over one-hot amino acids
            plus 3 positional features), SELU, max over positions.
        embedding_size: E, size of the sequence embedding and of the pooled vector.
        num_heads, head_size: heads H of the Hopfield pooling and the per-head size Dh.
        beta: inverse temperature of the pooling (None = 1/sqrt(head_size)).
        use_counts: append log(1 + count) to every sequence's CNN features.
        max_length: longest accepted sequence (longer ones raise ValueError).
        n_train_sequences: sequences per repertoire in each gradient pass.
        top_fraction: share of those that are the most attended (rest: uniform random sample).
        kmer_init: at most this many CNN kernels are initialised as detectors of the k-mers most
            enriched in one class of the training repertoires: the k-mers significant at
            family-wise level 5 % if there are any, else ``kmer_init`` candidates (the top k-mers
            by that test and by a per-repertoire test, alternately; 0 = off). This is what makes a
            witness rate of 0.1 % learnable in a CPU budget (docs/deeprc.md).
        dropout: dropout on association weights and in the output network.
        max_iter, batch_size, learning_rate, weight_decay: epochs, repertoires per step, AdamW.
        early_stopping, validation_fraction, n_iter_no_change, tol: stop when the loss on a
            stratified held-out share of the training repertoires has not improved by ``tol`` for
            ``n_iter_no_change`` epochs, and restore the best epoch's weights.
        chunk_size: sequences per chunk in inference passes (bounds memory).
        random_state: int seed (None = fresh randomness).
        device: torch device ("cpu" default).
        num_threads: torch CPU threads during fit/predict (restored afterwards; None = unchanged).
            1 by default: the small per-chunk operations gain little from more threads and a
            shared machine loses a lot to oversubscription; use 2+ for big-repertoire inference.

    Fitted attributes: ``classes_``, ``module_``, ``n_iter_``, ``best_iteration_``,
    ``loss_curve_``, ``validation_scores_`` (negative validation loss per epoch),
    ``kmer_init_kmers_`` (the k-mers whose detectors initialised kernels 0, 1, ...),
    ``kmer_init_significant_`` (True if they passed the significance test, False if they are the
    top candidates seeded without it).
    """

    _seed_scale = 8.0  # seeded association score of the sharpest head = this x sequence log-odds
    _seed_spread = 2.0  # each further head: half the scale (temperatures 8, 4, 2, 1 for 4 heads)

    def __init__(self, n_kernels=32, kernel_size=5, embedding_size=32, num_heads=4, head_size=16,
                 beta=None, use_counts=False, max_length=40, n_train_sequences=512,
                 top_fraction=0.5, kmer_init=8, pretrain_steps=500, sequence_loss=1.0, dropout=0.0,
                 max_iter=30, batch_size=4, learning_rate=3e-3,
                 weight_decay=1e-4, early_stopping=True, validation_fraction=0.2,
                 n_iter_no_change=8, tol=1e-4, chunk_size=16384, random_state=None,
                 device="cpu", num_threads=1):
        self.n_kernels = n_kernels
        self.kernel_size = kernel_size
        self.embedding_size = embedding_size
        self.num_heads = num_heads
        self.head_size = head_size
        self.beta = beta
        self.use_counts = use_counts
        self.max_length = max_length
        self.n_train_sequences = n_train_sequences
        self.top_fraction = top_fraction
        self.kmer_init = kmer_init
        self.pretrain_steps = pretrain_steps
        self.sequence_loss = sequence_loss
        self.dropout = dropout
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.device = device
        self.num_threads = num_threads

    # ------------------------------------------------------------------ checks

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = self.random_state is None
        return tags

    def _bad(self, name, expected):
        return ValueError(f"The {name!r} parameter of {type(self).__name__} must be {expected}. "
                          f"Got {getattr(self, name)!r} instead.")

    def _check_params(self):
        for name, lo in _INT_PARAMS.items():
            v = getattr(self, name)
            if not isinstance(v, Integral) or isinstance(v, bool) or v < lo:
                raise self._bad(name, f"an int >= {lo}")
        if self.max_length > 255:
            raise self._bad("max_length", "an int in [1, 255]")
        if self.kernel_size > self.max_length:
            raise self._bad("kernel_size", f"an int <= max_length ({self.max_length})")
        for name, lo, hi in (("top_fraction", 0, 1), ("dropout", 0, 0.99),
                             ("validation_fraction", 0, 0.9)):
            v = getattr(self, name)
            if not isinstance(v, Real) or isinstance(v, bool) or not lo <= v <= hi:
                raise self._bad(name, f"a float in [{lo}, {hi}]")
        for name in ("learning_rate", "weight_decay", "tol", "sequence_loss"):
            v = getattr(self, name)
            if not isinstance(v, Real) or isinstance(v, bool) or not math.isfinite(v) or v < 0 \
                    or (name == "learning_rate" and v == 0):
                raise self._bad(name, "a finite float " + ("> 0" if name == "learning_rate"
                                                           else ">= 0"))
        if self.beta is not None and (not isinstance(self.beta, Real) or isinstance(self.beta, bool)
                                      or not math.isfinite(self.beta) or self.beta <= 0):
            raise self._bad("beta", "a positive float or None")
        if self.num_threads is not None and (not isinstance(self.num_threads, Integral)
                                             or isinstance(self.num_threads, bool)
                                             or self.num_threads < 1):
            raise self._bad("num_threads", "an int >= 1 or None")

    def _build(self, n_classes):
        return DeepRCNet(n_classes, n_kernels=self.n_kernels, kernel_size=self.kernel_size,
                         max_length=self.max_length, embedding_size=self.embedding_size,
                         num_heads=self.num_heads, head_size=self.head_size, beta=self.beta,
                         use_counts=bool(self.use_counts), dropout=self.dropout)

    def _check_lengths(self, reps: list[Repertoire], name: str) -> None:
        for i, r in enumerate(reps):
            if r.max_length > self.max_length:
                j = int(np.argmax(np.asarray(r.lengths) > self.max_length))
                raise ValueError(f"{name}[{i}] sequence {j} has {int(r.lengths[j])} amino acids, "
                                 f"more than max_length={self.max_length} (raise max_length)")

    # ------------------------------------------------------------------ tensors of a repertoire

    def _chunk(self, rep: Repertoire, index: np.ndarray, dev):
        """Device tensors (codes, lengths, counts) of sequences ``index`` and their grouping by
        length computed on the host (so the CNN reads nothing back from the device)."""
        codes = torch.from_numpy(rep.encode(index=index, max_length=None))
        lens = np.asarray(rep.lengths[index], dtype=np.int64)
        counts = (torch.from_numpy(np.asarray(rep.counts[index], dtype=np.float32))
                  if self.use_counts else None)
        return (codes.to(dev), torch.from_numpy(lens).to(dev),
                None if counts is None else counts.to(dev), length_groups(lens))

    def _chunks(self, rep: Repertoire):
        n = len(rep)
        for s in range(0, n, self.chunk_size):
            yield s, np.arange(s, min(s + self.chunk_size, n))

    @torch.no_grad()
    def _stream(self, net: DeepRCNet, rep: Repertoire, *, scores: bool = False):
        """Exact pooled vector over all sequences (chunked); optionally all scores (H, N)."""
        dev = next(net.parameters()).device
        part, all_scores = None, []
        for _, idx in self._chunks(rep):
            emb = net.sequences(*self._chunk(rep, idx, dev))  # (C, E)
            a = pool_scores(net.pool, emb)  # (H, Q, C)
            p = pool_partial(net.pool, emb, a)
            part = p if part is None else part.merge(p)
            if scores:
                all_scores.append(a[:, 0].float())
        z = pool_finish(net.pool, part)
        return (z, torch.cat(all_scores, 1)) if scores else z

    @torch.no_grad()
    def _logits(self, net: DeepRCNet, reps: list[Repertoire]) -> torch.Tensor:
        net.eval()
        z = torch.stack([self._stream(net, r) for r in reps])  # (B, E)
        return net.classify(z)  # (B, C)

    # ------------------------------------------------------------------ fit

    def fit(self, X, y):
        """Fit on repertoires ``X`` (list of :class:`Repertoire`, lists of amino-acid strings, or
        a :class:`RepertoireDataset`) with one label per repertoire ``y``."""
        self._check_params()
        reps = as_repertoires(X)
        self._check_lengths(reps, "X")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(reps):
            raise ValueError(f"y must be a 1-D array with one label per repertoire ({len(reps)}), "
                             f"got shape {y.shape}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite labels")
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("y must contain at least 2 classes, got only "
                             f"{self.classes_.tolist()}")
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(2**31 - 1))
        dev = torch.device(self.device)
        idx = np.arange(len(reps))
        n_val = round(self.validation_fraction * len(reps)) if self.early_stopping else 0
        if n_val >= len(self.classes_) and np.bincount(y_enc).min() >= 2 \
                and len(reps) - n_val >= len(self.classes_):
            tr, va = train_test_split(idx, test_size=n_val, stratify=y_enc, random_state=seed)
        else:
            tr, va = idx, idx[:0]
        gen = torch.Generator().manual_seed(seed)
        with _threads(self.num_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self._build(len(self.classes_)).to(dev)
            self._train(net, reps, torch.from_numpy(y_enc).to(dev), tr, va, rs, gen)
        self.module_ = net.eval()
        return self


    # ------------------------------------------------------------------ predict

    def _forward(self, X):
        check_is_fitted(self, "module_")
        reps = as_repertoires(X)
        self._check_lengths(reps, "X")
        with _threads(self.num_threads):
            return self._logits(self.module_, reps).double().cpu()

    def decision_function(self, X):
        """(n,) logit margin ``logit_1 - logit_0`` for two classes, else (n, C) logits."""
        z = self._forward(X).numpy()
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X):
        """(n, C) class probabilities, columns in the order of ``classes_``."""
        return torch.softmax(self._forward(X), -1).numpy()

    def predict(self, X):
        """(n,) predicted labels from ``classes_``."""
        check_is_fitted(self, "module_")
        return self.classes_[self.predict_proba(X).argmax(1)]

    def sequence_weights(self, X, *, average_heads: bool = True) -> list[np.ndarray]:
        """Association weights of every sequence: list of (N_i,) (or (H, N_i)) arrays.

        Each head's weights sum to one over the repertoire's sequences (exact softmax over all of
        them, computed chunk by chunk): how much each sequence contributed to the pooled vector.
        """
        check_is_fitted(self, "module_")
        reps = as_repertoires(X)
        self._check_lengths(reps, "X")
        out = []
        with _threads(self.num_threads):
            self.module_.eval()
            for r in reps:
                _, a = self._stream(self.module_, r, scores=True)  # (H, N)
                w = torch.softmax(a.double(), -1)
                out.append((w.mean(0) if average_heads else w).numpy())
        return out

    # ------------------------------------------------------------------ sharded inference

    @torch.no_grad()
    def decision_function_sharded(self, local, group=None) -> np.ndarray:
        """Decision value of ONE repertoire whose sequences are split over the ranks of a
        ``torch.distributed`` group (each rank passes its own disjoint part ``local``; a rank may
        hold none: pass an empty list). Exact: the ranks' online-softmax partials are merged with
        :mod:`hopfield.distributed`'s MAX + SUM all-reduce. Collective: every rank must call it;
        every rank gets the same value (a scalar for two classes, else (C,) logits)."""
        from ..distributed import _check_dist, _merge

        check_is_fitted(self, "module_")
        _check_dist(group)
        net = self.module_.eval()
        H, Dh = self.num_heads, self.head_size
        empty = isinstance(local, (list, tuple)) and len(local) == 0
        with _threads(self.num_threads):
            if empty:
                like = torch.zeros((), dtype=torch.float64)
                part = SoftmaxPartial.empty((H, 1), Dh, like)
            else:
                rep = as_repertoires([local], "local")[0]
                self._check_lengths([rep], "local")
                part = None
                for _, idx in self._chunks(rep):
                    p = pool_partial(net.pool, net.sequences(*self._chunk(rep, idx, "cpu")))
                    part = p if part is None else part.merge(p)
            merged = _merge(part, group)
            if not bool(torch.isfinite(merged.m).all()):
                raise ValueError("local is empty on every rank: the repertoire has no sequence")
            z = net.classify(pool_finish(net.pool, merged)[None])[0].double()
        return (z[1] - z[0]).numpy() if len(z) == 2 else z.numpy()

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to directory ``path`` (``config.json`` + ``weights.safetensors``; no pickle)."""
        check_is_fitted(self, "module_")
        params = self.get_params()
        if not isinstance(params.get("random_state"), (int, type(None))):
            params["random_state"] = None
        cls = type(self)
        config = {"class": f"{cls.__module__}.{cls.__qualname__}", "params": params,
                  "classes": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str,
                  "n_iter": int(self.n_iter_)}
        if hasattr(self, "kmer_init_kmers_"):
            config["kmer_init_kmers"] = [str(k) for k in self.kmer_init_kmers_]
            config["kmer_init_significant"] = bool(self.kmer_init_significant_)
        save_state(path, config, {f"module.{k}": v for k, v in self.module_.state_dict().items()})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeepRCClassifier:
        """Load a model written by :meth:`save` (only JSON and safetensors are read)."""
        config, tensors = load_state(path)
        try:
            mod, _, name = config["class"].rpartition(".")
            if mod != "hopfield" and not mod.startswith("hopfield."):
                raise TypeError(f"saved model class {config['class']!r} is not part of hopfield")
            klass = getattr(importlib.import_module(mod), name)
            if not (isinstance(klass, type) and issubclass(klass, cls)):
                raise TypeError(f"saved model is a {config['class']}, not a {cls.__name__}")
            est = klass(**config["params"])
            est._check_params()
            est.classes_ = np.asarray(config["classes"], dtype=np.dtype(config["classes_dtype"]))
            est.n_iter_ = int(config.get("n_iter", 0))
            if "kmer_init_kmers" in config:             # absent in models saved before 2026-11-29
                kmers, sig = config["kmer_init_kmers"], config.get("kmer_init_significant")
                if not (isinstance(kmers, list) and all(isinstance(k, str) for k in kmers)
                        and isinstance(sig, bool)):
                    raise TypeError("kmer_init_kmers must be a list of strings and "
                                    "kmer_init_significant a bool")
                est.kmer_init_kmers_, est.kmer_init_significant_ = kmers, sig
        except (KeyError, AttributeError, ImportError, TypeError, ValueError) as err:
            raise ValueError(f"config.json in {path} is not a valid saved DeepRC model: "
                             f"{err!r}") from None
        net = est._build(len(est.classes_))
        state = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"weights in {path} do not match its config.json: {err}") from None
        est.module_ = net.to(torch.device(est.device)).eval()
        return est
