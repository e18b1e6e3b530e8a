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

import copy
import importlib
import math
import os
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..estimators._base import _threads
from ..estimators._io import load_state, save_state
from ..streaming import SoftmaxPartial
from .data import Repertoire, as_repertoires
from .network import DeepRCNet, length_groups, pool_finish, pool_partial, pool_scores

__all__ = ["DeepRCClassifier"]


_KMER_ALPHA = 0.05  # family-wise level of the k-mer enrichment test
_SELU_FLOOR = 1.0507009873554805 * 1.6732632423543772  # -SELU(-inf)
_KMER_SHARPNESS = 4.0  # k-mer kernel: 1 - s * (mismatches): +1 exact, -3 with one mismatch


def _kmer_strings(keys, k: int) -> list[str]:
    from .data import ALPHABET

    return ["".join(ALPHABET[int(key) // 20 ** (k - 1 - o) % 20] for o in range(k)) for key in keys]


@torch.no_grad()
def _restore_kernels(net, j, W, pw, pb, uw) -> None:
    emb = net.embed
    emb.tokens.weight.view(emb.tokens.num_embeddings, emb.k, emb.K)[:, :, j] = W
    emb.position.weight[j] = pw
    emb.position.bias[j] = pb
    net.project.weight[:, j] = uw


_INT_PARAMS = {"n_kernels": 1, "kernel_size": 1, "embedding_size": 1, "num_heads": 1,
               "head_size": 1, "max_length": 1, "n_train_sequences": 1, "max_iter": 1,
               "batch_size": 1, "n_iter_no_change": 1, "chunk_size": 1, "pretrain_steps": 0,
               "kmer_init": 0}


class DeepRCClassifier(ClassifierMixin, BaseEstimator):
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
            by that test and by a per-repertoire test, alternately; 0 = off). This is what makes a witness rate of 0.1 % learnable in a CPU
            budget (docs/deeprc.md).
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
                 top_fraction=0.5, kmer_init=8, pretrain_steps=500, sequence_loss=1.0, dropout=0.0, max_iter=30, batch_size=4, learning_rate=3e-3,
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
            raise ValueError(f"y must contain at least 2 classes, got only {self.classes_.tolist()}")
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(2**31 - 1))
        dev = torch.device(self.device)
        idx = np.arange(len(reps))
        n_val = int(round(self.validation_fraction * len(reps))) if self.early_stopping else 0
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

    def _n_top(self, rep: Repertoire) -> int:
        """How many of ``rep``'s sequences a gradient pass takes as the most attended (0: the
        repertoire is small enough to take whole, or the selection is uniform)."""
        if len(rep) <= self.n_train_sequences:
            return 0
        return int(round(self.top_fraction * self.n_train_sequences))

    @torch.no_grad()
    def _top_attended(self, net, reps, order) -> torch.Tensor:
        """(len(order), max n_top) device tensor: the indices of the most attended sequences of
        each repertoire (by any head; -1 pads repertoires that need none). Computed for a whole
        epoch at once so the indices reach the host in one read."""
        n_top = [self._n_top(reps[i]) for i in order]
        dev = next(net.parameters()).device
        out = torch.full((len(order), max(n_top, default=0)), -1, dtype=torch.long, device=dev)
        was = net.training
        net.eval()
        for k, (i, t) in enumerate(zip(order, n_top)):
            if t:
                _, a = self._stream(net, reps[i], scores=True)  # (H, N)
                out[k, :t] = torch.topk(a.amax(0), t).indices
        net.train(was)
        return out

    def _select(self, rep: Repertoire, top: np.ndarray, rs) -> np.ndarray:
        """Indices of the sequences for one gradient pass: the top-attended ``top`` (host array,
        -1 padded) + a uniform random sample of the rest."""
        n, m = len(rep), self.n_train_sequences
        if n <= m:
            return np.arange(n)
        top = top[top >= 0]
        rest = np.setdiff1d(np.arange(n), top, assume_unique=False)
        rand = rs.choice(rest, m - len(top), replace=False)
        return np.sort(np.concatenate([top, rand]))

    def _kmer_init(self, net, reps, y: np.ndarray, tr: np.ndarray) -> None:
        """k-mer-informed initialisation of up to ``kmer_init`` CNN kernels (training data only).

        Every k-mer (k = min(4, kernel_size)) of the training repertoires is counted per class; its
        enrichment is the binomial z-score of its count in one class against that class's share of
        all windows, ``z_c = (n_c - n p_c) / sqrt(n p_c (1 - p_c))`` (max over classes). The
        k-mers significant at family-wise level 5 % are used (Bonferroni over all C·20^k tests:
        z > 5.1 for 4-mers and two classes); if none is, ``kmer_init`` candidates are used, taken
        alternately from the top by z and the top by a one-way ANOVA F of the k-mer's
        per-repertoire frequency across classes (rare witnesses or several motifs: the motif can
        rank among the top few without passing the threshold; the training weights the
        candidates). The counts cover
        all repertoires passed to ``fit`` (the early-stopping share included, never test data).
        The ``kmer_init`` most enriched of them each set one
        kernel: weight 4 for the k-mer's amino acid at each of its k offsets, 0 otherwise, no
        positional term, bias 1 - 4k. The kernel's max over windows is then +1 for an exact
        occurrence and <= -3 otherwise (where SELU saturates): a near-binary motif detector that
        a linear read-out can weight strongly. Each such kernel also gets its own random
        direction u_j (norm sqrt(E)) in the sequence embedding, offset so that it contributes
        nothing unless the kernel fires. The other kernels keep their random initialisation. Returns a callable that restores the initialised kernels (the warm start
        holds them fixed), or None if nothing was seeded.
        """
        self.kmer_init_kmers_, self.kmer_init_significant_ = [], False
        n = min(self.kmer_init, self.n_kernels)
        if n == 0:
            return None
        from scipy.stats import norm

        from .baselines import _window_keys

        k = min(4, self.kernel_size)
        n_cls = int(y.max()) + 1
        counts = np.zeros((n_cls, 20 ** k))
        f1, f2 = np.zeros((n_cls, 20 ** k)), np.zeros((n_cls, 20 ** k))  # per-repertoire frequency sums
        for i in tr:
            c = np.zeros(20 ** k)
            for _, key in _window_keys(reps[i], k, chunk=32768):  # bounded memory (~15 MiB)
                c += np.bincount(key, minlength=20 ** k)
            counts[y[i]] += c
            f = c / max(c.sum(), 1.0)
            f1[y[i]] += f
            f2[y[i]] += f * f
        tot = counts.sum(1)
        if tot.sum() == 0:
            return None
        p = (tot / tot.sum())[:, None]  # (C, 1) share of windows per class
        n_k = counts.sum(0)[None]  # (1, 20**k)
        z = ((counts - n_k * p) / np.sqrt(n_k * p * (1 - p) + 1e-12)).max(0)
        top = np.argsort(-z, kind="stable")[:n]
        sig = top[z[top] > norm.isf(_KMER_ALPHA / (n_cls * 20 ** k))]  # Bonferroni over k-mers
        if len(sig):  # a clear signal: seed only the significant k-mers
            top = sig
        else:
            # no k-mer is significant (rare witnesses, several motifs): seed the ``kmer_init`` top
            # candidates anyway, alternately by the pooled z and by a per-repertoire test (one-way
            # ANOVA F of the k-mer's frequency per repertoire across classes: consistency over
            # repertoires), and let the warm start, the sequence-head refit and the read-out weight
            # them (a candidate that does not help the training loss gets little weight)
            m = np.bincount(y[tr], minlength=n_cls).astype(float)[:, None]
            mean = f1 / np.maximum(m, 1)
            grand = f1.sum(0) / m.sum()
            between = (m * (mean - grand) ** 2).sum(0) / max(n_cls - 1, 1)
            within = (f2 - m * mean ** 2).sum(0) / max(m.sum() - n_cls, 1)
            tiny = 1e-9 * f2.sum(0) / m.sum()  # guards k-mers without variance (rounding)
            F_ = np.where(within > tiny, between / np.maximum(within, 1e-30), 0.0)
            byF = np.argsort(-F_, kind="stable")
            byz = np.argsort(-z, kind="stable")
            seen, top = set(), []
            for a, b in zip(byz, byF):
                for key in (a, b):
                    if key not in seen and len(top) < n:
                        seen.add(key)
                        top.append(key)
                if len(top) >= n:
                    break
            top = np.array(top)
        self.kmer_init_kmers_ = _kmer_strings(top, k)
        self.kmer_init_significant_ = len(sig) > 0
        if len(top) == 0:
            return None
        emb = net.embed
        W = emb.tokens.weight.view(emb.tokens.num_embeddings, self.kernel_size, self.n_kernels)
        with torch.no_grad():
            for j, key in enumerate(top):
                W[:, :, j] = 0.0
                for o in range(k):
                    a = int(key) // 20 ** (k - 1 - o) % 20 + 1  # code of the k-mer's o-th residue
                    W[a, o, j] = _KMER_SHARPNESS
                emb.position.weight[j] = 0.0
                emb.position.bias[j] = 1.0 - _KMER_SHARPNESS * k
            # embedding: a distinct direction u_j per k-mer kernel, zero unless the kernel fires
            # (SELU's floor -1.758 is cancelled by the bias), |u_j| = sqrt(E) so that a hit
            # stands out against the other kernels' contribution after the key normalisation
            proj = net.project
            for j in range(len(top)):
                u = torch.randn(proj.out_features)
                u = u * (proj.out_features ** 0.5 / u.norm())
                proj.weight[:, j] = u.to(proj.weight)
                proj.bias.add_(_SELU_FLOOR * u.to(proj.bias))
        idx = torch.arange(len(top))
        saved = (W[:, :, idx].detach().clone(), emb.position.weight[idx].detach().clone(),
                 emb.position.bias[idx].detach().clone(), net.project.weight[:, idx].detach().clone())
        return lambda: _restore_kernels(net, idx, *saved)

    def _pretrain(self, net, reps, y, tr, rs, opt, keep=None, batch: int = 512, bags: int = 8):
        """Sequence-level warm start (single-instance learning): every sequence inherits its
        repertoire's label; each step draws ``bags`` training repertoires (balanced classes) and
        ``batch // bags`` random sequences of each; k-mer-initialised kernels (``keep``) are held
        fixed during the warm start (the noisy single-instance gradient would otherwise erase
        them before the sequence classifier learns to use them). Then the pooling is seeded to attend by the
        learned sequence log-odds (:meth:`DeepRCNet.seed_attention`)."""
        if self.pretrain_steps == 0:
            return
        dev = y.device
        yt = y[tr].cpu().numpy()
        by_class = [tr[yt == c] for c in np.unique(yt)]
        per = max(1, batch // bags)
        net.train()
        for _ in range(self.pretrain_steps):
            chosen = np.concatenate([rs.choice(g, max(1, bags // len(by_class))) for g in by_class])
            idxs = [rs.randint(0, len(reps[i]), per) for i in chosen]
            parts = [self._chunk(reps[i], j, dev) for i, j in zip(chosen, idxs)]
            L = max(p[0].shape[1] for p in parts)
            codes = torch.cat([F.pad(p[0], (0, L - p[0].shape[1])) for p in parts])
            lengths = torch.cat([p[1] for p in parts])
            counts = torch.cat([p[2] for p in parts]) if self.use_counts else None
            groups = length_groups(np.concatenate([reps[i].lengths[j] for i, j in zip(chosen, idxs)]))
            labels = y[torch.from_numpy(np.repeat(chosen, per)).to(dev)]
            loss = F.cross_entropy(
                net.sequence_logits(net.sequences(codes, lengths, counts, groups)), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if keep is not None:
                keep()
        self._fit_sequence_head(net, reps, y, tr, rs)
        net.seed_attention(self._seed_scale, self._seed_spread)
        net.eval()
        with torch.no_grad():
            Z = torch.stack([self._stream(net, reps[i]) for i in tr])  # (n_train, E)
            net.pooled_mean.copy_(Z.mean(0))
            sd = Z.std(0) if len(tr) > 1 else torch.ones_like(Z[0])
            net.pooled_scale.copy_(sd.clamp(min=max(1e-2 * float(sd.max()), 1e-6)))
            self._init_readout(net, net.standardize(Z).numpy(), yt)

    @torch.no_grad()
    def _fit_sequence_head(self, net, reps, y, tr, rs, limit: int = 262_144) -> None:
        """Refit the sequence-level classifier exactly: an L2 logistic regression on the
        embeddings of (up to ``limit``, uniformly drawn) training sequences, each labelled with
        its repertoire's label. The stochastic warm start sees each sequence about once; a
        witness signal of 1 in 1,000 needs the full-data optimum."""
        from sklearn.linear_model import LogisticRegression

        sizes = np.array([len(reps[i]) for i in tr])
        share = min(1.0, limit / max(1, sizes.sum()))
        net.eval()
        dev = y.device
        norm = net.pool.hopfield.norm_stored
        feats, labels = [], []
        for i, n in zip(tr, sizes):
            idx = np.arange(n) if share >= 1 else np.sort(
                rs.choice(n, max(1, int(round(share * n))), replace=False))
            for s in range(0, len(idx), self.chunk_size):
                e = net.sequences(*self._chunk(reps[i], idx[s:s + self.chunk_size], dev))
                feats.append((norm(e) if norm is not None else e).cpu().numpy())
            labels.append(np.full(len(idx), int(y[i])))
        X, t = np.concatenate(feats), np.concatenate(labels)
        if len(np.unique(t)) < 2:
            return
        lr = LogisticRegression(C=1.0, max_iter=500).fit(X, t)
        head = net.sequence_head
        coef = torch.as_tensor(lr.coef_, dtype=head.weight.dtype, device=head.weight.device)
        icpt = torch.as_tensor(lr.intercept_, dtype=head.bias.dtype, device=head.bias.device)
        head.weight.zero_()
        head.bias.zero_()
        if coef.shape[0] == 1:  # binary: logit_1 - logit_0 = w x + b
            head.weight[-1] = coef[0]
            head.bias[-1] = icpt[0]
        else:
            head.weight.copy_(coef)
            head.bias.copy_(icpt)

    def _init_readout(self, net, Xs: np.ndarray, yt: np.ndarray) -> None:
        """Linear read-out initialised by an L2 logistic regression on the standardised pooled
        vectors of the training repertoires (the output MLP starts at zero)."""
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1.0, max_iter=1000).fit(Xs, yt)
        coef = torch.as_tensor(lr.coef_, dtype=torch.float32)
        icpt = torch.as_tensor(lr.intercept_, dtype=torch.float32)
        with torch.no_grad():
            net.skip.weight.zero_()
            net.skip.bias.zero_()
            if coef.shape[0] == 1:  # binary: logit_1 - logit_0 = w x + b
                net.skip.weight[-1] = coef[0]
                net.skip.bias[-1] = icpt[0]
            else:
                net.skip.weight.copy_(coef)
                net.skip.bias.copy_(icpt)

    def _train(self, net, reps, y, tr, va, rs, gen):
        dev = y.device
        opt = torch.optim.AdamW(net.parameters(), lr=self.learning_rate,
                                weight_decay=self.weight_decay)
        keep = self._kmer_init(net, reps, y.cpu().numpy(), np.concatenate([tr, va]))
        self._pretrain(net, reps, y, tr, rs, opt, keep)
        best, best_state, wait = math.inf, None, 0
        self.loss_curve_, self.validation_scores_ = [], []
        self.n_iter_, self.best_iteration_ = 0, 0
        if self.pretrain_steps:  # fine-tune the warm-started network gently, fresh moments
            opt = torch.optim.AdamW(net.parameters(), lr=0.1 * self.learning_rate,
                                    weight_decay=self.weight_decay)
        # Host reads: ONE per epoch. The top-attended indices for the next epoch are computed at
        # the end of the current one (from the network as it stands then) and travel to the host
        # packed with the epoch's summed loss and validation loss.
        order = tr[rs.permutation(len(tr))]
        warm = self._val_loss(net, reps, y, va) if len(va) and self.pretrain_steps else None
        head, top = self._read([] if warm is None else [warm], self._top_attended(net, reps, order))
        if warm is not None:  # the warm start itself is a candidate
            best = head[0]
            best_state = copy.deepcopy(net.state_dict())
        for epoch in range(self.max_iter):
            total = torch.zeros((), device=dev)  # summed on the device
            for s in range(0, len(order), self.batch_size):
                b = order[s:s + self.batch_size]
                sel = [self._select(reps[i], top[s + k], rs) for k, i in enumerate(b)]
                net.train()
                embs = [net.sequences(*self._chunk(reps[i], j, dev)) for i, j in zip(b, sel)]
                M = max(len(j) for j in sel)
                emb = torch.zeros(len(b), M, embs[0].shape[1], device=dev)
                mask = torch.ones(len(b), M, dtype=torch.bool, device=dev)
                for k, (e, j) in enumerate(zip(embs, sel)):
                    emb[k, :len(j)] = e
                    mask[k, :len(j)] = False
                yb = y[torch.from_numpy(b).to(dev)]
                loss = F.cross_entropy(net(emb, mask), yb)
                if self.sequence_loss > 0:  # every sequence inherits its repertoire's label
                    seq_y = y[torch.from_numpy(np.repeat(b, [len(j) for j in sel])).to(dev)]
                    loss = loss + self.sequence_loss * F.cross_entropy(
                        net.sequence_logits(torch.cat(embs)), seq_y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * len(b)
            vals = [total] + ([self._val_loss(net, reps, y, va)] if len(va) else [])
            last = epoch + 1 == self.max_iter
            if not last:
                order = tr[rs.permutation(len(tr))]
            head, top = self._read(vals, None if last else self._top_attended(net, reps, order))
            self.loss_curve_.append(head[0] / len(tr))
            self.n_iter_ = epoch + 1
            if len(va) == 0:
                continue
            vloss = head[1]
            self.validation_scores_.append(-vloss)
            if vloss < best - self.tol:
                best, wait, self.best_iteration_ = vloss, 0, epoch + 1
                best_state = copy.deepcopy(net.state_dict())
            else:
                wait += 1
                if wait >= self.n_iter_no_change:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_iteration_ = self.n_iter_

    def _val_loss(self, net, reps, y, va) -> torch.Tensor:
        return F.cross_entropy(self._logits(net, [reps[i] for i in va]),
                               y[torch.from_numpy(va).to(y.device)])

    @staticmethod
    def _read(scalars, top):
        """One device -> host read of scalar losses and the (R, T) top-attended indices."""
        parts = [t.detach().reshape(1).double() for t in scalars]
        if top is not None:
            parts.append(top.flatten().double())  # indices < 2**53: exact in float64
        flat = torch.cat(parts).cpu().numpy() if parts else np.zeros(0)
        n = len(scalars)
        head = [float(v) for v in flat[:n]]
        return head, (None if top is None else flat[n:].astype(np.int64).reshape(top.shape))

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
