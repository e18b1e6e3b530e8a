"""Multiple-instance learning with Hopfield pooling: :class:`HopfieldMILClassifier`.

A bag is a set of instances (an (n_i, D) array); only the bag has a label. The network is the
paper's MIL setup (Ramsauer et al. 2020, appendix): an instance-embedding MLP applied to every
instance, ``hopfield.HopfieldPooling`` (a learned query pattern ξ that retrieves from the bag's
embedded instances Y: z = W_O Yᵀ W_Vᵀ softmax(β W_K Y ξ) per head), and a linear classifier head::

    bag (n_i, D) -> standardise -> [Linear -> ReLU -> Dropout] x n_layers   (n_i, E)
                 -> HopfieldPooling(E, head_size, E, num_heads)            (E,)
                 -> Dropout -> Linear                                       (n_classes,)

With ``n_members`` = M > 1 the estimator trains M such networks at once as one batched network
(:class:`_BatchedMILNet`: the stacked (M, ...) parameters of
:class:`~hopfield.estimators._ensemble.StackedEnsemble`, every op carrying the member dimension, no
loop over members), each with its own initialisation, validation part, mini-batch order, dropout
and bag-dropout masks and early stopping; ``predict_proba`` averages the members' probabilities.
One member (the default) runs as a one-member ``StackedEnsemble``, as before. Training, seeding,
validation and save/load are those of every estimator (:mod:`hopfield.estimators._base`).

Shape legend: M members, B bags in a batch, N instances (padded), D input features,
E embedding size, H heads, C classes.

Example::

    from hopfield.datasets import load_mil
    from hopfield.estimators import HopfieldMILClassifier
    ds = load_mil("elephant")
    clf = HopfieldMILClassifier(random_state=0).fit(ds.bags[:150], ds.y[:150])
    proba = clf.predict_proba(ds.bags[150:])          # (50, 2)
    w = clf.instance_weights(ds.bags[150:])           # list of (n_i,) association weights
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import DEPRECATED, ClassifierTargetMixin, HopfieldEstimator, Standardizer
from ._ensemble import StackedEnsemble
from ._mil_net import MILNet, _batchable, _BatchedMILNet, _HopfieldPool

__all__ = ["BaseMILClassifier", "HopfieldMILClassifier", "check_bags", "pad_bags"]


# ----------------------------------------------------------------------------- input handling


def check_bags(X, mask=None, *, n_features=None, name="X") -> list[np.ndarray]:
    """Validate bags; returns a list of (n_i, D) float64 arrays (finite, real).

    ``X`` is a list of 2-D arrays (one per bag) or a padded 3-D array (B, N, D) with an optional
    boolean ``mask`` (B, N), True = padding (ignored instance).
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim != 3:
            raise ValueError(f"{name} must be a list of (n_i, D) bags or a padded array of shape "
                             f"(B, N, D), got an array of shape {X.shape}")
        if mask is None:
            bags = list(X)
        else:
            mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
            if mask.dtype != bool or mask.shape != X.shape[:2]:
                raise ValueError(f"mask must be a boolean array of shape {X.shape[:2]} (True = "
                                 f"padding), got {mask.dtype} array of shape {mask.shape}")
            bags = [x[~m] for x, m in zip(X, mask)]
    else:
        if mask is not None:
            raise ValueError("mask is only accepted with a padded 3-D array of bags, got a list "
                             "of bags")
        if isinstance(X, (str, bytes, dict)) or not hasattr(X, "__len__"):
            raise TypeError(f"{name} must be a list of (n_i, D) arrays or a 3-D array, got "
                            f"{type(X).__name__}")
        bags = list(X)
    if len(bags) == 0:
        raise ValueError(f"{name} must contain at least one bag, got 0")
    out = []
    for i, b in enumerate(bags):
        if isinstance(b, torch.Tensor):
            b = b.detach().cpu().numpy()
        if np.iscomplexobj(b):
            raise ValueError(f"{name}[{i}] holds complex values; complex data is not supported "
                             "(pass the real part or split real and imaginary parts into features)")
        try:
            b = np.asarray(b, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}[{i}] must be a numeric (n_i, D) array, got "
                            f"{type(b).__name__}") from None
        if b.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D (n_i, D) array of instances, got shape "
                             f"{b.shape}")
        if b.shape[0] == 0:
            why = (f": mask[{i}] marks all {mask.shape[1]} positions as padding (True = padding)"
                   if mask is not None else "")
            raise ValueError(f"{name}[{i}] is an empty bag (0 instances){why}; every bag needs "
                             f">= 1 instance")
        if n_features is None:
            n_features = b.shape[1]
        if b.shape[1] != n_features:
            raise ValueError(f"{name}[{i}] has {b.shape[1]} features, expected {n_features} "
                             f"(all bags must have the same number of features)")
        if not np.isfinite(b).all():
            raise ValueError(f"{name}[{i}] contains NaN or infinite features")
        out.append(b)
    return out


def pad_bags(bags: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack bags into (B, N_max, D) float32 with a (B, N_max) mask, True = padding."""
    n = np.array([len(b) for b in bags])
    X = np.zeros((len(bags), n.max(), bags[0].shape[1]), dtype=np.float32)
    mask = np.ones((len(bags), n.max()), dtype=bool)
    for i, b in enumerate(bags):
        X[i, :len(b)] = b
        mask[i, :len(b)] = False
    return X, mask


# ----------------------------------------------------------------------------- estimator

_INT1 = Interval(Integral, 1, None, closed="left")
_POS = Interval(Real, 0, None, closed="neither")


class BaseMILClassifier(ClassifierTargetMixin, ClassifierMixin, HopfieldEstimator):
    """MIL networks on the shared base; subclasses define ``_build_pooling(E) -> (module, P)``.

    Training (the base's loop): features standardised (float64) on the training instances; Adam
    with L2 weight decay and an exponential learning-rate decay per epoch; bag dropout (each
    instance of a training bag is dropped with probability ``bag_dropout``, at least one kept);
    per-member early stopping on a stratified validation part (``validation_fraction``), keeping
    each member's best epoch; :meth:`_stopping_losses` picks the criterion from ``scoring``
    (``"roc_auc"``, the default of every MIL network here, or ``"loss"``; a subclass without the
    parameter stops on the cross-entropy).
    """

    _parameter_constraints: ClassVar[dict] = {
        **HopfieldEstimator._parameter_constraints,
        "embedding_size": [_INT1],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "bag_dropout": [Interval(Real, 0, 1, closed="left")],
        "learning_rate_decay": [Interval(Real, 0, 1, closed="right")],
        "num_threads": [_INT1, None],
        "scoring": [StrOptions({"roc_auc", "loss"})],
        "hidden_size": [_INT1, StrOptions({DEPRECATED})],
        "lr": [_POS, StrOptions({DEPRECATED})],
        "lr_decay": [Interval(Real, 0, 1, closed="right"), StrOptions({DEPRECATED})],
        "max_epochs": [_INT1, StrOptions({DEPRECATED})],
        "patience": [_INT1, StrOptions({DEPRECATED})],
    }
    _deprecated_aliases: ClassVar[dict[str, str]] = {
        "hidden_size": "embedding_size", "lr": "learning_rate", "lr_decay": "learning_rate_decay",
        "max_epochs": "max_iter", "patience": "n_iter_no_change"}
    _eval_chunk = 64
    #: length-bucketed batches (windows of 16 batches sorted by jittered bag length; measured in
    #: docs/reproduce.md "Fit time and padding")
    _length_buckets = 16
    #: how the members of an ensemble run: ``"auto"`` (default) = one batched network
    #: (:class:`_BatchedMILNet`) for n_members > 1 and :class:`StackedEnsemble` (today's path,
    #: bit-identical fits) for one member; ``"batched"`` / ``"loop"`` force one of them (the loop =
    #: ``functional_call`` per member), ``"vmap"`` = ``StackedEnsemble(vectorize=True)``
    #: (benchmarks/mil_ensemble.py compares the three)
    _ensemble_forward = "auto"

    def _build_pooling(self, size: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False      # X is a list of bags / a padded 3-D array
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags

    def _make_optimizer(self, params):
        hp = self._hp
        opt = torch.optim.Adam(params, lr=hp.learning_rate, weight_decay=hp.weight_decay,
                               foreach=True)      # one multi-tensor step (CPU default: a loop)
        return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=hp.learning_rate_decay)

    #: weight of the validation loss added to 1 - AUC with scoring="roc_auc" (breaks ties: the AUC
    #: of a few validation bags moves in coarse steps)
    _auc_tie_weight = 0.01

    def _stopping_losses(self, vloss, out_val, y_val, holdout_val):
        """What early stopping minimises per member: the validation loss (``scoring="loss"``), or
        with ``scoring="roc_auc"`` and a binary target 1 - ROC AUC of the member's validation bags
        plus 0.01 x its loss. A member whose validation bags hold a single class keeps the loss
        (AUC undefined); non-finite outputs give NaN (never an improvement). Multiclass: the loss.
        The AUC is the Mann-Whitney statistic (ties count 1/2, as ``roc_auc_score``) over all
        (positive, negative) pairs, computed on the device: (M, n_val, n_val) comparisons."""
        if getattr(self._hp, "scoring", "loss") != "roc_auc" or out_val.shape[-1] != 2:
            return vloss
        s = (out_val[..., 1] - out_val[..., 0]).double()                       # (M, n_val)
        pos, neg = holdout_val & (y_val == 1), holdout_val & (y_val == 0)      # (M, n_val)
        pairs = pos.unsqueeze(2) & neg.unsqueeze(1)                            # (M, n, n)
        diff = s.unsqueeze(2) - s.unsqueeze(1)
        wins = (diff > 0).double() + 0.5 * (diff == 0).double()
        n_pairs = pairs.sum((1, 2))
        auc = (wins * pairs).sum((1, 2)) / n_pairs.clamp_min(1)
        stop = 1.0 - auc + self._auc_tie_weight * vloss.double()
        finite = (torch.isfinite(s) | ~holdout_val).all(1)
        stop = torch.where(finite, stop, torch.full_like(stop, float("nan")))
        return torch.where(n_pairs > 0, stop, vloss.double())

    # -- input
    def _check_input(self, X, y=None, *, reset: bool, mask=None):
        bags = check_bags(X, mask, n_features=None if reset else self.n_features_in_)
        if y is not None:
            y = np.asarray(y)
            if y.ndim != 1 or len(y) != len(bags):
                raise ValueError(f"y must be a 1-D array with one label per bag ({len(bags)}), got "
                                 f"shape {y.shape}")
            if y.dtype.kind == "c":
                raise ValueError("y holds complex values; class labels must be real")
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                raise ValueError("y contains NaN or infinite labels")
        if reset:
            self.n_features_in_ = bags[0].shape[1]
            self.scaler_ = Standardizer().fit(np.concatenate(bags))
        bags = [self.scaler_.transform(b, what=f"X[{i}]") for i, b in enumerate(bags)]
        Xp, Mp = pad_bags(bags)
        dev = self._torch_device if hasattr(self, "_torch_device") else self._device()
        data = (torch.from_numpy(Xp).to(dev), torch.from_numpy(Mp).to(dev), (~Mp).sum(1))
        return data, len(bags), y

    def _sample_lengths(self, data):
        return data[2]                                                 # instances per bag (n,)

    def _collate(self, data, idx, *, train, generator):
        X, M, lengths = data
        n = int(lengths[idx].max())
        t = torch.as_tensor(idx, device=X.device)
        xb, mb = X[t, :n], M[t, :n]                                   # (M, B, N, D), (M, B, N)
        p = self._hp.bag_dropout
        if train and p > 0:
            drop = (torch.rand(mb.shape, generator=generator) < p).to(mb.device) & ~mb
            keep_all = (drop | mb).all(-1, keepdim=True)              # never empty a bag
            mb = torch.where(keep_all, mb, mb | drop)
        return xb, mb

    def _build_net(self, n_features, n_classes):
        hp = self._hp
        E = hp.embedding_size if hp.n_layers > 0 else n_features
        pooling, P = self._build_pooling(E)
        return MILNet(n_features, n_classes, pooling, P, embedding_size=hp.embedding_size,
                      n_layers=hp.n_layers, dropout=hp.dropout)

    def _build_module(self, data, n_outputs, generator):
        if generator is not None:   # member m's initialisation from its own seed
            seeds = torch.randint(0, 2**62, (self._hp.n_members,), generator=generator).tolist()
            members = []
            for s in seeds:
                torch.manual_seed(s)
                members.append(self._build_net(self.n_features_in_, n_outputs))
        else:
            members = [self._build_net(self.n_features_in_, n_outputs)
                       for _ in range(self._hp.n_members)]
        mode = self._ensemble_forward
        if mode not in ("auto", "batched", "loop", "vmap"):
            raise ValueError(f"_ensemble_forward must be 'auto', 'batched', 'loop' or 'vmap', got "
                             f"{mode!r}")
        if mode == "vmap":
            return StackedEnsemble(members, vectorize=True)
        batched = mode == "batched" or (mode == "auto" and len(members) > 1)
        return (_BatchedMILNet if batched and _batchable(members[0]) else StackedEnsemble)(members)

    def instance_weights(self, X, *, mask=None, average_heads=True):
        """Per-instance association weights of the pooling: list of (n_i,) (or (H, n_i)) arrays.

        Each row sums to one over the bag's instances: how much each instance contributed to the
        pooled bag representation that the head classified (the mean over members when
        ``n_members > 1``). Also stored as ``instance_weights_``.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "module_")
        if not hasattr(self, "_hp"):
            self._resolve_params(warn=False)
        (X, M, lengths), n, _ = self._check_input(X, reset=False, mask=mask)
        total = None
        with torch.no_grad():
            for m in range(self.module_.n_members):
                net = self.module_.member(m).eval()
                ws = []
                for s in range(0, n, self._eval_chunk):
                    b = np.arange(s, min(s + self._eval_chunk, n))
                    k = int(lengths[b].max())
                    _, w = net(X[b, :k], M[b, :k], True)
                    if w is None:
                        raise ValueError(f"{type(self).__name__} has no association weights "
                                         f"(pooling={self._pool_name})")
                    ws += [w[i, :, :lengths[j]].double().cpu() for i, j in enumerate(b)]
                total = ws if total is None else [a + c for a, c in zip(total, ws)]
        ws = [w / self.module_.n_members for w in total]
        self.instance_weights_ = [(w.mean(0) if average_heads else w).numpy() for w in ws]
        return self.instance_weights_


class HopfieldMILClassifier(BaseMILClassifier):
    """Multiple-instance classifier: instance MLP -> ``HopfieldPooling`` (learned query) -> linear
    head.

    Parameters:
        embedding_size: instance embedding size E (width of each embedding layer).
        n_layers: number of embedding layers (Linear -> ReLU -> Dropout).
        num_heads: Hopfield heads H; head_size: association-space size per head.
        beta: inverse temperature β of the pooling (None = 1/sqrt(head_size)).
        normalize: LayerNorm on the query, the stored instances and their projections (as hflayers).
        dropout: dropout in the embedding, on the association weights and before the head.
        bag_dropout: probability of dropping each training instance (at least one kept per bag).
        learning_rate, learning_rate_decay, weight_decay: Adam learning rate, per-epoch
            exponential decay, L2 weight decay.
        max_iter, batch_size: maximum epochs, bags per step.
        tol, n_iter_no_change: early stopping (a member stops once its validation loss has not
            improved by more than ``tol`` for ``n_iter_no_change`` epochs).
        early_stopping, validation_fraction: share of bags held out (stratified, per member) for
            early stopping; too few bags for a split raise a ValueError as in scikit-learn.
        scoring: what early stopping watches on each member's validation bags: ``"roc_auc"``
            (default; binary targets: the best epoch by ROC AUC, ties broken by the cross-entropy;
            multiclass targets, or a validation part holding one class, use the loss) or
            ``"loss"`` (the cross-entropy; the rule before this release). With the loss, about a
            third of the fits kept epoch 1-3 on 50-200 bags. ROC AUC was chosen on the quick folds
            (7-set mean +0.7, 3 seeds); on the ``--full`` outer folds it then gave -0.5 (UCSB -2.7,
            elephant +0.3; no set significant), docs/reproduce.md. ``validation_scores_`` stay the
            loss.
        n_members: networks trained at once as one batched model (own seed, validation part,
            batches, bag dropout and early stopping each); probabilities are averaged.
        random_state: ``None`` (default) = fresh randomness; an int = reproducible.
        device: ``"cpu"`` (default), ``"cuda"`` or ``"auto"``.
        num_threads: torch CPU threads during fit/predict (restored afterwards). Small MIL networks
            run fastest single-threaded (measured ~30x slower with 2 threads on a busy 2-core
            machine); None leaves torch's setting alone.
        hidden_size, lr, lr_decay, max_epochs, patience: deprecated aliases of embedding_size,
            learning_rate, learning_rate_decay, max_iter, n_iter_no_change (FutureWarning in fit).

    The defaults work untuned (``hopfield reproduce mil --full`` uses them: on 50–200 bags inner
    tuning was not better, docs/reproduce.md); :meth:`param_grid` is the grid of the inner-tuned
    protocol ``reproduce.mil.run(mode="tuned")`` (learning rate, embedding size/depth, heads, β,
    dropouts, weight decay).
    Fitted attributes: ``classes_``, ``n_features_in_``, ``module_``, ``n_iter_``,
    ``best_iteration_`` (per member), ``loss_curve_``, ``validation_scores_``,
    ``best_validation_score_``, ``scaler_``; after :meth:`instance_weights`, ``instance_weights_``.
    """

    _pool_name = "hopfield"
    _parameter_constraints: ClassVar[dict] = {
        **BaseMILClassifier._parameter_constraints,
        "num_heads": [_INT1], "head_size": [_INT1], "beta": [_POS, None], "normalize": ["boolean"],
    }

    def __init__(self, embedding_size=128, n_layers=2, num_heads=4, head_size=32, beta=None,
                 normalize=True, dropout=0.1, bag_dropout=0.1, *, learning_rate=1e-3,
                 learning_rate_decay=0.98, weight_decay=1e-3, max_iter=100, batch_size=8,
                 tol=1e-4, n_iter_no_change=15, early_stopping=True, validation_fraction=0.15,
                 scoring="roc_auc", n_members=1, random_state=None, device="cpu", num_threads=1,
                 hidden_size=DEPRECATED, lr=DEPRECATED, lr_decay=DEPRECATED,
                 max_epochs=DEPRECATED, patience=DEPRECATED):
        self._store_params(locals())

    @staticmethod
    def param_grid() -> dict[str, list]:
        """Tuning grid (paper's MIL appendix, reduced): used by
        ``reproduce.mil.run(mode="tuned")``."""
        return {"learning_rate": [1e-3, 3e-4], "embedding_size": [64, 128, 256], "n_layers": [1, 2],
                "num_heads": [4, 8], "beta": [None, 0.1, 1.0], "dropout": [0.0, 0.1, 0.5],
                "bag_dropout": [0.0, 0.1, 0.5], "weight_decay": [1e-4, 1e-3, 1e-2]}

    def _build_pooling(self, size):
        hp = self._hp
        return _HopfieldPool(size, hp.head_size, hp.num_heads, hp.beta, hp.dropout,
                             bool(hp.normalize)), size
