"""One base for the library's scikit-learn estimators: validation, seeding, device, training,
saving.

Shape legend: M ensemble members, B samples (or bags) in a batch, n training samples, K network
outputs (classes, or 1 for regression).

A subclass is its network plus a few hooks (see ``docs/architecture.md`` / ``/tmp`` notes)::

    class MyRegressor(RegressorTargetMixin, HopfieldEstimator):
        _parameter_constraints = {**HopfieldEstimator._parameter_constraints,
                                  "width": [Interval(Integral, 1, None, closed="left")]}

        def __init__(self, width=32, *, max_iter=200, ..., random_state=None, device="cpu"):
            ...store every argument...

        def _check_input(self, X, y=None, *, reset):  # -> (data, n, y); sets n_features_in_
            return self._check_table(X, y, reset=reset)

        def _collate(self, data, idx, *, train, generator):   # idx (M, B) -> tuple of tensors
            return (data[idx],)                                # (M, B, D)

        def _build_module(self, data, n_outputs, generator):  # nn.Module: (*batch) -> (M, B, K)
            return MyNet(self.n_features_in_, self.width, n_outputs, self._hp.n_members)

The base owns everything else:

- ``fit`` (scikit-learn's ``_fit_context``: ``_parameter_constraints`` are validated first; then the
  subclass's ``_check_params`` for cross-parameter rules), deprecated parameter aliases
  (``_deprecated_aliases``: old name -> new name, a ``FutureWarning`` in ``fit`` when set),
  seeding (``random_state``: ``None`` = fresh randomness, an int = reproducible; the global torch
  RNG is never touched), the device (``"cpu"`` default, ``"cuda"``, ``"auto"``), the threads;
- :class:`Standardizer` (float64 statistics and checks before any float32 cast, so a value such as
  1e200 is either handled exactly or rejected naming its column);
- the validation split per member (stratified for classifiers; too small a split raises as in
  scikit-learn) and :class:`EarlyStopping` per member;
- one training loop (AdamW by default, ``_make_optimizer`` hook), mini-batches from ``_collate``;
  every member draws its own mini-batches from its own training part;
- fitted attributes ``n_iter_``, ``best_iteration_`` (M,), ``loss_curve_``, ``validation_scores_``
  (negative validation loss per epoch, higher is better, as scikit-learn's ``validation_score_``),
  ``best_validation_score_``, ``n_features_in_`` (+ ``feature_names_in_``), ``module_``;
- ``save(path, overwrite=False)`` / ``load(path)`` through :mod:`hopfield.estimators._io`
  (versioned ``config.json`` + ``weights.safetensors``, class check, no pickle).

The target mixins (:class:`ClassifierTargetMixin`, :class:`RegressorTargetMixin`, in
:mod:`._targets`) supply ``_encode_y``, ``_loss`` (the one cross-entropy / squared error of the
package), ``predict*`` and ``score``; :class:`Standardizer`, :class:`EarlyStopping` and the threads
context live in :mod:`._utils` (all re-exported here).
"""

from __future__ import annotations

import math
import os
import warnings
from numbers import Integral, Real
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import validation
from ._targets import ClassifierTargetMixin, RegressorTargetMixin, cross_entropy
from ._utils import EarlyStopping, Standardizer, _random_batch_share, _threads

__all__ = [
    "ClassifierTargetMixin",
    "EarlyStopping",
    "HopfieldEstimator",
    "RegressorTargetMixin",
    "Standardizer",
    "cross_entropy",
]

#: Sentinel default of a deprecated alias parameter (kept so get_params/clone round-trip).
DEPRECATED = "deprecated"



class HopfieldEstimator(BaseEstimator):
    """Base of the library's estimators (see the module docstring for the hooks)."""

    _parameter_constraints: ClassVar[dict] = {
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, None],
    }
    #: old parameter name -> new name; the old name is an __init__ parameter defaulting to
    #: ``"deprecated"`` and, when set, overrides the new one in ``fit`` with a FutureWarning.
    _deprecated_aliases: ClassVar[dict[str, str]] = {}
    #: attributes written to config.json on save besides the common ones (name -> JSON value)
    _extra_fitted: tuple[str, ...] = ()
    #: samples per forward pass when evaluating (validation loss, predict)
    _eval_chunk = 1024
    #: all members train on the same mini-batches (see ``_epoch_batches``)
    _shared_batches = False
    #: length-bucketed mini-batches (see ``_epoch_batches``): window size in batches within which
    #: samples are sorted by :meth:`_sample_lengths` (0 = off). Only used when that returns lengths.
    _length_buckets = 0
    #: random jitter added to log-length before sorting (log 4: bags within a factor ~4 of each
    #: other are still mixed at random, so batches do not become fixed or label-sorted)
    _length_jitter = math.log(4)
    #: buckets are used only where padding dominates: when random batches would hold less than
    #: this share of real (unpadded) entries (musk2: 0.19). Elsewhere the saving is small and the
    #: sorted batches measured a small AUC cost (docs/reproduce.md, "Fit time").
    _length_buckets_below = 0.25

    # ------------------------------------------------------------------ hooks (subclasses)
    def _check_input(self, X, y=None, *, reset: bool, **input_kw):  # -> (data, n, y)
        raise NotImplementedError

    def _collate(self, data, idx: np.ndarray, *, train: bool, generator: torch.Generator):
        raise NotImplementedError

    def _build_module(self, data, n_outputs: int, generator: torch.Generator | None):
        raise NotImplementedError

    def _sample_lengths(self, data) -> np.ndarray | None:
        """Per-sample cost (e.g. instances per bag) for length-bucketed batches; None = all
        equal."""
        return None

    def _check_params(self) -> None:
        """Cross-parameter rules (after ``_parameter_constraints``); reads ``self._hp``."""

    def _make_optimizer(self, params):
        """(optimizer, scheduler or None); the scheduler steps once per epoch."""
        hp = self._hp
        return torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay), None

    # ------------------------------------------------------------------ parameters
    def _store_params(self, values: dict) -> None:
        """``__init__`` helper: store every ``__init__`` argument unchanged (scikit-learn's rule);
        call as ``self._store_params(locals())``."""
        for name in self._get_param_names():
            setattr(self, name, values[name])

    def _resolve_params(self, *, warn: bool = True) -> SimpleNamespace:
        """Validated parameters with deprecated aliases applied, as ``self._hp``."""
        self._validate_params()
        hp = self.get_params(deep=False)
        for name, value in hp.items():   # sklearn's Interval(Integral/Real) lets True/False pass
            rules = self._parameter_constraints.get(name, [])
            if isinstance(value, (bool, np.bool_)) and "boolean" not in rules and any(
                    isinstance(r, Interval) for r in rules):
                raise self._param_error(name, str(next(r for r in rules if isinstance(r, Interval)))
                                        + ", not a bool", value)
        for old, new in self._deprecated_aliases.items():
            value = hp.pop(old, DEPRECATED)
            if isinstance(value, str) and value == DEPRECATED:
                continue
            if warn:
                warnings.warn(f"{type(self).__name__}: the parameter {old!r} is deprecated and "
                              f"will be removed in a future release; use {new!r} instead.",
                              FutureWarning, stacklevel=4)
            hp[new] = value
        self._hp = SimpleNamespace(**hp)
        self._check_params()
        return self._hp

    def _param_error(self, name: str, expected: str, value) -> ValueError:
        return ValueError(f"The {name!r} parameter of {type(self).__name__} must be {expected}. "
                          f"Got {value!r} instead.")

    def _device(self) -> torch.device:
        dev = self._hp.device
        if dev is None or dev == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            out = torch.device(dev)
        except (RuntimeError, TypeError):
            raise self._param_error("device", "'cpu', 'cuda', 'cuda:<i>' or 'auto'", dev) from None
        if out.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={dev!r} was requested but CUDA is not available; use "
                             f"device='cpu' or 'auto'")
        return out

    # ------------------------------------------------------------------ shared input helpers
    def _check_table(self, X, y=None, *, reset: bool):
        """2-D numeric X (float64, finite, no complex) -> (standardised float32 (n, D), n, y)."""
        if y is None:
            X = validate_data(self, X, dtype=np.float64, reset=reset)
        else:
            X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        if reset:
            self.scaler_ = Standardizer().fit(X)
        Z = self.scaler_.transform(X, names=getattr(self, "feature_names_in_", None))
        return Z, len(Z), y

    # ------------------------------------------------------------------ fit
    def _validation_split(self, y_enc, n: int, rng: np.random.RandomState):
        """holdout (M, n) bool, True = in member m's validation part.

        Classifiers: stratified — every class with >= 2 samples gives round(fraction * count)
        samples, at least 1 and at most count - 1 (a class with one sample stays in training).
        Regressors: round(fraction * n) random samples. A split that cannot be made (no class with
        two samples; fewer than 1 validation or training sample) raises a ValueError, as
        scikit-learn's early stopping does.
        """
        hp = self._hp
        M, frac = hp.n_members, hp.validation_fraction
        holdout = np.zeros((M, n), dtype=bool)
        if not hp.early_stopping or frac == 0:
            return holdout
        if self._stratify:
            groups = [np.flatnonzero(y_enc == c) for c in np.unique(y_enc)]
            groups = [g for g in groups if len(g) >= 2]
            if not groups:
                raise ValueError(f"validation_fraction={frac}: no class has 2 samples, so no "
                                 f"stratified validation split for early stopping can be made; "
                                 f"use early_stopping=False or more data")
        else:
            n_val = round(frac * n)
            if n_val < 1 or n_val >= n:
                raise ValueError(f"validation_fraction={frac} of {n} samples gives {n_val} "
                                 f"validation samples; early stopping needs at least 1 validation "
                                 f"and 1 training sample. Use a larger validation_fraction, more "
                                 f"data, or early_stopping=False")
        for m in range(M):
            if self._stratify:
                for g in groups:
                    g = rng.permutation(g)
                    holdout[m, g[:max(1, min(round(frac * len(g)), len(g) - 1))]] = True
            else:
                holdout[m, rng.permutation(n)[:n_val]] = True
        return holdout

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, **input_kw):
        """Fit on ``X`` and targets ``y``; returns ``self``. See the class docstring."""
        self._resolve_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is "
                             "None")
        data, _, y = self._check_input(X, y, reset=True, **input_kw)
        y_enc = self._encode_y(y)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        dev = self._device()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), \
                _threads(getattr(self, "num_threads", None)):
            torch.manual_seed(seed)
            self._train(data, y_enc, seed, dev)
        return self

    def _train(self, data, y_enc: np.ndarray, seed: int, dev: torch.device) -> None:
        hp = self._hp
        M, n = hp.n_members, len(y_enc)
        rng = np.random.RandomState(seed)
        holdout = self._validation_split(y_enc, n, rng)
        early = bool(holdout.any())
        gen = torch.Generator().manual_seed(seed)
        self._torch_device = dev
        net = self._build_module(data, self._n_outputs, gen).to(dev)
        yt = torch.as_tensor(y_enc, device=dev)
        train_idx = [np.flatnonzero(~holdout[m]) for m in range(M)]       # M × (n_m,)
        val_w = torch.as_tensor(holdout, dtype=torch.float32, device=dev)  # (M, n)
        val_idx = np.flatnonzero(holdout.any(0))       # samples in some member's validation part
        val_t = torch.as_tensor(val_idx, device=dev)
        opt, sched = self._make_optimizer(net.parameters())
        stopper = EarlyStopping(hp.tol, hp.n_iter_no_change, M)
        best = {k: v.detach().clone() for k, v in net.named_parameters()} if early else None
        best_vloss = np.full(M, np.inf)                # validation loss at each member's best epoch
        lengths = self._sample_lengths(data)
        if (lengths is not None
                and _random_batch_share(lengths, hp.batch_size) >= self._length_buckets_below):
            lengths = None                                   # little padding: plain random batches
        self.loss_curve_, self.validation_scores_ = [], []
        epoch = 0
        # Inputs were checked once in fit, so the layers' per-call data checks are switched off
        # (each costs a host sync); the one read-back per epoch below checks the losses instead.
        with validation(False):
            for epoch in range(1, hp.max_iter + 1):
                net.train()
                total, seen = torch.zeros((), device=dev), 0      # summed on the device: no sync
                # (M, B) x2
                for idx, w in self._epoch_batches(train_idx, holdout, rng, gen, lengths):
                    out = net(*self._collate(data, idx, train=True, generator=gen))  # (M, B, K)
                    per = self._loss(out, yt[torch.as_tensor(idx, device=dev)])      # (M, B)
                    if w is None:
                        loss = per.mean(1).sum()
                    else:
                        w = torch.as_tensor(w, dtype=per.dtype, device=dev)
                        loss = ((per * w).sum(1) / w.sum(1).clamp_min(1.0)).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total = total + loss.detach() * (idx.shape[1] / M)
                    seen += idx.shape[1]
                if sched is not None:
                    sched.step()
                if early:
                    with torch.no_grad():
                        out_val = self._forward(net, data, n, val_idx)              # (M, n_val, K)
                        per = self._loss(out_val, yt[val_t])                         # (M, n_val)
                        w = val_w[:, val_t]
                        vloss = (per * w).sum(1) / w.sum(1)                          # (M,)
                        stop = self._stopping_losses(vloss, out_val, yt[val_t], w > 0)  # (M,)
                        # the epoch's one host sync: training loss, validation losses and the
                        # early-stopping numbers together
                        host = torch.cat([total.reshape(1), vloss, stop.to(vloss.dtype)])
                        host = host.double().cpu().numpy()
                    train_loss, vloss, stop = host[0] / seen, host[1:M + 1], host[M + 1:]
                else:
                    train_loss, vloss = float(total) / seen, None
                # With early stopping a member whose loss turns NaN never improves again, so its
                # best finite epoch is kept; without it, NaN weights would enter the model.
                if not early and not np.isfinite(train_loss):
                    raise ValueError(
                        f"{type(self).__name__}: training diverged at epoch {epoch} (non-finite "
                        f"loss); lower learning_rate (now {hp.learning_rate!r}) or check the "
                        f"input scale")
                self.loss_curve_.append(float(train_loss))
                if not early:
                    continue
                self.validation_scores_.append(-float(vloss.mean()))
                improved = stopper.update(stop, epoch)
                best_vloss = np.where(improved, vloss, best_vloss)
                if improved.any():
                    imp = torch.as_tensor(improved, device=dev)
                    with torch.no_grad():
                        for k, v in net.named_parameters():
                            keep = imp.view(-1, *([1] * (v.dim() - 1)))
                            best[k].copy_(torch.where(keep, v.detach(), best[k]))
                if stopper.stop:
                    break
        if early:
            with torch.no_grad():
                for k, v in net.named_parameters():
                    v.copy_(best[k])
            self.best_iteration_ = stopper.best_iteration.copy()
            self.best_validation_score_ = -float(best_vloss.mean())
        else:
            self.best_iteration_ = np.full(M, epoch, dtype=np.int64)
            self.best_validation_score_ = None
        self.n_iter_ = epoch
        self.module_ = net.eval()

    def _stopping_losses(self, vloss: torch.Tensor, out_val: torch.Tensor, y_val: torch.Tensor,
                         holdout_val: torch.Tensor) -> torch.Tensor:
        """(M,) per-member numbers early stopping minimises, lower is better (default: the
        validation loss ``vloss`` (M,)). ``out_val`` (M, n_val, K) are the members' outputs on the
        samples with targets ``y_val`` (n_val,) that are in some member's validation part;
        ``holdout_val`` (M, n_val) bool marks member m's own. All on the training device: the
        result is read back with the epoch's losses (one host read per epoch). Subclasses may stop
        on another criterion (e.g. a ranking metric); ``validation_scores_`` and
        ``best_validation_score_`` stay the loss."""
        return vloss

    def _epoch_batches(self, train_idx, holdout, rng, gen, lengths=None):
        """One epoch's mini-batches: yields ``(idx (M, B), weights (M, B) or None)``.

        Default: every member draws its own batches from its own training part (``rng``).
        With ``_shared_batches = True`` all members see the same batch of all samples (one
        ``torch.randperm`` from ``gen`` per epoch) and a member's validation samples get weight 0
        — cheaper when the members share their input (the tabular network).

        Length buckets (``lengths`` given and ``_length_buckets`` = W > 0): after the shuffle,
        each window of W·batch_size samples is sorted by log-length plus a uniform jitter in
        ``[0, _length_jitter)`` and cut into batches, and the
        batch order is shuffled (one permutation for all members, so member m's j-th batch holds
        bags of about the same length rank as the other members'). A padded batch then pads to
        lengths close to its own, not to the longest bag of a random draw. Seeded like the rest.
        """
        bs = self._hp.batch_size
        M, n = holdout.shape
        if self._shared_batches:
            perm = torch.randperm(n, generator=gen).numpy()
            keep = ~holdout
            for s in range(0, n, min(bs, n)):
                b = perm[s:s + bs]
                yield np.tile(b, (M, 1)), keep[:, b]
            return
        n_train = min(len(t) for t in train_idx)
        bs = min(bs, n_train)
        order = np.stack([t[rng.permutation(len(t))][:n_train] for t in train_idx])  # (M, n_t)
        starts = np.arange(0, n_train, bs)
        if lengths is not None and self._length_buckets > 0:
            window = self._length_buckets * bs
            key = np.log(np.maximum(lengths[order], 1)) + rng.uniform(     # (M, n_t) jittered
                0.0, self._length_jitter, order.shape)                     # log-length
            for s in range(0, n_train, window):
                win = order[:, s:s + window]                                        # (M, w)
                order[:, s:s + window] = np.take_along_axis(
                    win, np.argsort(key[:, s:s + window], axis=1, kind="stable"), axis=1)
            starts = starts[rng.permutation(len(starts))]
        for s in starts:
            yield order[:, s:s + bs], None

    @torch.no_grad()
    def _forward(self, net, data, n: int, idx: np.ndarray | None = None) -> torch.Tensor:
        """Network outputs (M, len(idx), K) for samples ``idx`` (default all n), eval mode,
        chunks."""
        net.eval()
        chunk = self._eval_chunk
        M = self._hp.n_members
        idx = np.arange(n) if idx is None else idx
        outs = [net(*self._collate(data, np.tile(idx[s:s + chunk], (M, 1)), train=False,
                                   generator=None))
                for s in range(0, len(idx), chunk)]
        return torch.cat(outs, dim=1)

    def _outputs(self, X, **input_kw) -> torch.Tensor:
        """float64 CPU outputs (M, n, K) for new input ``X``."""
        check_is_fitted(self, "module_")
        if not hasattr(self, "_hp"):
            self._resolve_params(warn=False)
        data, n, _ = self._check_input(X, reset=False, **input_kw)
        with _threads(getattr(self, "num_threads", None)):
            return self._forward(self.module_, data, n).double().cpu()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Save to the directory ``path`` (``config.json`` + ``weights.safetensors``).

        ``path`` must not exist, be an empty directory, or (with ``overwrite=True``) hold a model
        saved by this class. A directory holding anything else is refused and left untouched.
        """
        from ._io import save_model

        check_is_fitted(self, "module_")
        save_model(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | None = None):
        """Load a model written by :meth:`save` (JSON + safetensors only; never pickle)."""
        from ._io import load_model

        return load_model(cls, path, device=device)
