"""Multiple-instance learning with Hopfield pooling: :class:`HopfieldMILClassifier`.

A bag is a set of instances (an (n_i, D) array); only the bag has a label. The network is the
paper's MIL setup (Ramsauer et al. 2020, appendix): an instance-embedding MLP applied to every
instance, ``hopfield.HopfieldPooling`` (a learned query pattern ξ that retrieves from the bag's
embedded instances Y: z = W_O Yᵀ W_Vᵀ softmax(β W_K Y ξ) per head), and a linear classifier head::

    bag (n_i, D) -> standardise -> [Linear -> ReLU -> Dropout] x n_layers   (n_i, E)
                 -> HopfieldPooling(E, head_size, E, num_heads)            (E,)
                 -> Dropout -> Linear                                       (n_classes,)

Shape legend: B bags in a batch, N instances (padded), D input features, E embedding size,
H heads, C classes.

Example::

    from hopfield.datasets import load_mil
    from hopfield.estimators import HopfieldMILClassifier
    ds = load_mil("elephant")
    clf = HopfieldMILClassifier(random_state=0).fit(ds.bags[:150], ds.y[:150])
    proba = clf.predict_proba(ds.bags[150:])          # (50, 2)
    w = clf.instance_weights(ds.bags[150:])           # list of (n_i,) association weights
"""

from __future__ import annotations

import copy
import importlib
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._io import load_state, save_state

__all__ = ["BaseMILClassifier", "HopfieldMILClassifier", "check_bags", "pad_bags"]


# ----------------------------------------------------------------------------- input handling


def check_bags(X, mask=None, *, n_features=None, name="X") -> list[np.ndarray]:
    """Validate bags; returns a list of (n_i, D) float32 arrays.

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
                raise ValueError(f"mask must be a boolean array of shape {X.shape[:2]} (True = padding), "
                                 f"got {mask.dtype} array of shape {mask.shape}")
            bags = [x[~m] for x, m in zip(X, mask)]
    else:
        if mask is not None:
            raise ValueError("mask is only accepted with a padded 3-D array of bags, got a list of bags")
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
        try:
            b = np.asarray(b, dtype=np.float32)
        except (TypeError, ValueError):
            raise TypeError(f"{name}[{i}] must be a numeric (n_i, D) array, got {type(b).__name__}") from None
        if b.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D (n_i, D) array of instances, got shape {b.shape}")
        if b.shape[0] == 0:
            raise ValueError(f"{name}[{i}] is an empty bag (0 instances); every bag needs >= 1 instance")
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
    """Stack bags into (B, N_max, D) with a (B, N_max) mask, True = padding."""
    n = np.array([len(b) for b in bags])
    X = np.zeros((len(bags), n.max(), bags[0].shape[1]), dtype=np.float32)
    mask = np.ones((len(bags), n.max()), dtype=bool)
    for i, b in enumerate(bags):
        X[i, :len(b)] = b
        mask[i, :len(b)] = False
    return X, mask


# ----------------------------------------------------------------------------- network


class MILNet(nn.Module):
    """Instance embedding -> bag pooling -> linear head. ``pooling(h, mask) -> (z (B, P), w|None)``."""

    def __init__(self, n_features: int, n_classes: int, pooling: nn.Module, pooled_size: int, *,
                 hidden_size: int, n_layers: int, dropout: float):
        super().__init__()
        layers, d = [], n_features
        for _ in range(n_layers):
            layers += [nn.Linear(d, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden_size
        self.embed = nn.Sequential(*layers)
        self.pool = pooling
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(pooled_size, n_classes))

    def forward(self, x, mask, return_weights=False):
        keep = ~mask                                        # (B, N)
        if len(self.embed) == 0:
            h = x
        else:                                               # embed real instances only, not padding
            e = self.embed(x[keep])                         # (n_real, E)
            h = e.new_zeros(*mask.shape, e.shape[-1]).index_put((keep,), e)   # (B, N, E)
        z, w = self.pool(h, mask, return_weights)           # (B, P), (B, H, N) | None
        logits = self.head(z)                               # (B, C)
        return (logits, w) if return_weights else logits


class _HopfieldPool(nn.Module):
    def __init__(self, size, head_size, num_heads, beta, dropout, normalize):
        super().__init__()
        from hopfield.nn import HopfieldPooling
        self.hopfield = HopfieldPooling(size, hidden_size=head_size, output_size=size,
                                        num_heads=num_heads, beta=beta, dropout=dropout,
                                        normalize_state=normalize, normalize_stored=normalize,
                                        normalize_projection=normalize)

    def forward(self, h, mask, return_weights):
        if not return_weights:
            return self.hopfield(h, mask=mask), None
        z, info = self.hopfield(h, mask=mask, return_info=True)
        return z, info.weights.mean(dim=2)                  # (B, H, quantity, N) -> (B, H, N)


# ----------------------------------------------------------------------------- estimator


class _threads:
    """Temporarily set torch's intra-op CPU threads (None = leave unchanged)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


class BaseMILClassifier(ClassifierMixin, BaseEstimator):
    """Training loop shared by MIL networks; subclasses define ``_build_pooling(E) -> (module, P)``.

    Training: features standardised on the training instances; Adam with weight decay and an
    exponential learning-rate decay per epoch; bag dropout (each instance of a training bag is
    dropped with probability ``bag_dropout``, at least one kept); early stopping on the
    cross-entropy of a stratified internal validation split (``validation_fraction``), restoring the
    best epoch's weights. Everything is seeded by ``random_state``.
    """

    def _build_pooling(self, size: int):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- sklearn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False      # X is a list of bags / a padded 3-D array
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags

    def _check_params(self):
        def bad(name, expected):
            return ValueError(f"The {name!r} parameter of {type(self).__name__} must be {expected}. "
                              f"Got {getattr(self, name)!r} instead.")
        if self.num_threads is not None and (not isinstance(self.num_threads, (int, np.integer))
                                             or isinstance(self.num_threads, bool) or self.num_threads < 1):
            raise ValueError(f"The 'num_threads' parameter of {type(self).__name__} must be an int >= 1 "
                             f"or None. Got {self.num_threads!r} instead.")
        for name in ("hidden_size", "n_layers", "max_epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < (0 if name == "n_layers" else 1):
                raise bad(name, "an int >= " + ("0" if name == "n_layers" else "1"))
        for name in ("dropout", "bag_dropout"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise bad(name, "a float in [0, 1)")
        if not isinstance(self.validation_fraction, (int, float)) or not 0 <= self.validation_fraction < 1:
            raise bad("validation_fraction", "a float in [0, 1)")
        for name in ("lr", "weight_decay", "lr_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name != "weight_decay" and v == 0):
                raise bad(name, "a positive float" if name != "weight_decay" else "a float >= 0")

    def _device(self):
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _build_net(self, n_features, n_classes):
        E = self.hidden_size if self.n_layers > 0 else n_features
        pooling, P = self._build_pooling(E)
        return MILNet(n_features, n_classes, pooling, P, hidden_size=self.hidden_size,
                      n_layers=self.n_layers, dropout=self.dropout)

    # -- fit
    def fit(self, X, y, *, mask=None):
        """Fit on bags ``X`` (list of (n_i, D) arrays, or (B, N, D) + ``mask``) with labels ``y`` (B,)."""
        self._check_params()
        bags = check_bags(X, mask)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(bags):
            raise ValueError(f"y must be a 1-D array with one label per bag ({len(bags)}), got shape {y.shape}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite labels")
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y must contain at least 2 classes, got only {self.classes_.tolist()}")
        self.n_features_in_ = bags[0].shape[1]
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(2**31 - 1))
        dev = self._device()
        counts = np.bincount(y_enc)
        idx = np.arange(len(bags))
        n_val = int(round(self.validation_fraction * len(bags)))
        if n_val >= len(self.classes_) and counts.min() >= 2 and len(bags) - n_val >= len(self.classes_):
            tr, va = train_test_split(idx, test_size=n_val, stratify=y_enc, random_state=seed % (2**31 - 1))
        else:                                       # too little data for a validation split
            tr, va = idx, idx[:0]
        inst = np.concatenate([bags[i] for i in tr])
        mean, std = inst.mean(0), inst.std(0)
        std[std < 1e-6] = 1.0
        Xp, Mp = pad_bags([(b - mean) / std for b in bags])
        Xp, Mp = torch.from_numpy(Xp).to(dev), torch.from_numpy(Mp).to(dev)
        lengths = (~Mp).sum(1).cpu().numpy()
        yt = torch.from_numpy(y_enc).to(dev)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), _threads(self.num_threads):
            torch.manual_seed(seed)
            net = self._build_net(self.n_features_in_, len(self.classes_)).to(dev)
            self._train(net, Xp, Mp, lengths, yt, tr, va, rs)
        self.module_ = net.eval()
        self._scaler = (torch.from_numpy(mean), torch.from_numpy(std))
        return self

    def _train(self, net, X, M, lengths, y, tr, va, rs):
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)
        best, best_state, wait = math.inf, None, 0
        self.n_epochs_, self.best_epoch_, self.loss_curve_, self.validation_loss_curve_ = 0, 0, [], []
        for epoch in range(self.max_epochs):
            net.train()
            order = tr[rs.permutation(len(tr))]
            total = 0.0
            for s in range(0, len(order), self.batch_size):
                b = order[s:s + self.batch_size]
                n = int(lengths[b].max())
                xb, mb = X[b, :n], M[b, :n]                             # (B, N, D), (B, N)
                if self.bag_dropout > 0:
                    drop = (torch.rand(mb.shape, device=mb.device) < self.bag_dropout) & ~mb
                    keep_all = (drop | mb).all(1, keepdim=True)         # never empty a bag
                    mb = torch.where(keep_all, mb, mb | drop)
                loss = F.cross_entropy(net(xb, mb), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            sched.step()
            self.loss_curve_.append(total / len(tr))
            self.n_epochs_ = epoch + 1
            if len(va) == 0:
                continue
            vloss = F.cross_entropy(self._logits(net, X, M, lengths, va), y[va]).item()
            self.validation_loss_curve_.append(vloss)
            if vloss < best - 1e-4:
                best, wait, self.best_epoch_ = vloss, 0, epoch + 1
                best_state = copy.deepcopy(net.state_dict())
            else:
                wait += 1
                if wait >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_epoch_ = self.n_epochs_

    @torch.no_grad()
    def _logits(self, net, X, M, lengths, idx, return_weights=False, chunk=64):
        net.eval()
        outs, ws = [], []
        for s in range(0, len(idx), chunk):
            b = idx[s:s + chunk]
            n = int(lengths[b].max())
            o = net(X[b, :n], M[b, :n], return_weights)
            if return_weights:
                o, w = o
                ws += ([None] * len(b) if w is None else
                       [w[i, :, :lengths[j]].cpu() for i, j in enumerate(b)])  # (H, n_i) each
            outs.append(o)
        logits = torch.cat(outs)
        return (logits, ws) if return_weights else logits

    # -- predict
    def _prepare(self, X, mask):
        check_is_fitted(self, "module_")
        bags = check_bags(X, mask, n_features=self.n_features_in_)
        dev = next(self.module_.parameters()).device
        mean, std = self._scaler
        Xp, Mp = pad_bags([(b - mean.numpy()) / std.numpy() for b in bags])
        lengths = (~Mp).sum(1)
        return torch.from_numpy(Xp).to(dev), torch.from_numpy(Mp).to(dev), lengths

    def _forward_all(self, X, mask, return_weights=False):
        Xp, Mp, lengths = self._prepare(X, mask)
        with _threads(self.num_threads):
            return self._logits(self.module_, Xp, Mp, lengths, np.arange(len(lengths)),
                                return_weights)

    def predict_proba(self, X, *, mask=None):
        """Class probabilities, (B, n_classes), columns in the order of ``classes_``."""
        return torch.softmax(self._forward_all(X, mask).double(), -1).cpu().numpy()

    def decision_function(self, X, *, mask=None):
        """Logit margin: (B,) ``logit_1 - logit_0`` for two classes, else (B, n_classes) logits."""
        z = self._forward_all(X, mask).double().cpu().numpy()
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict(self, X, *, mask=None):
        """Predicted labels (B,) from ``classes_``."""
        check_is_fitted(self, "module_")
        return self.classes_[self.predict_proba(X, mask=mask).argmax(1)]

    def score(self, X, y, *, mask=None, sample_weight=None):
        """Accuracy; labels in ``y`` that were never seen in ``fit`` raise a ValueError."""
        check_is_fitted(self, "module_")
        y = np.asarray(y)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not seen during fit: {unseen.tolist()} "
                             f"(known classes: {self.classes_.tolist()})")
        from sklearn.metrics import accuracy_score
        return accuracy_score(y, self.predict(X, mask=mask), sample_weight=sample_weight)

    def instance_weights(self, X, *, mask=None, average_heads=True):
        """Per-instance association weights of the pooling: list of (n_i,) (or (H, n_i)) arrays.

        Each row sums to one over the bag's instances: how much each instance contributed to the
        pooled bag representation that the head classified. Also stored as ``instance_weights_``.
        """
        _, ws = self._forward_all(X, mask, return_weights=True)
        if ws[0] is None:
            raise ValueError(f"{type(self).__name__} has no association weights (pooling={self._pool_name})")
        ws = [w.mean(0) if average_heads else w for w in ws]
        self.instance_weights_ = [w.double().numpy() for w in ws]
        return self.instance_weights_

    # -- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to directory ``path`` (``config.json`` + ``weights.safetensors``), atomically."""
        check_is_fitted(self, "module_")
        cls = type(self)
        params = self.get_params()
        if not isinstance(params.get("random_state"), (int, type(None))):
            params["random_state"] = None
        config = {"class": f"{cls.__module__}.{cls.__qualname__}", "params": params,
                  "classes": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str,
                  "n_features_in": int(self.n_features_in_)}
        tensors = {f"module.{k}": v for k, v in self.module_.state_dict().items()}
        tensors["scaler.mean"], tensors["scaler.std"] = self._scaler
        save_state(path, config, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device=None):
        """Load a model written by :meth:`save` (no pickle: only JSON and safetensors are read)."""
        config, tensors = load_state(path)
        try:
            mod, _, name = config["class"].rpartition(".")
            if mod != "hopfield" and not mod.startswith("hopfield."):   # never import foreign code
                raise TypeError(f"saved model class {config['class']!r} is not part of hopfield")
            klass = getattr(importlib.import_module(mod), name)
            if not (isinstance(klass, type) and issubclass(klass, cls)):
                raise TypeError(f"saved model is a {config['class']}, not a {cls.__name__}")
            est = klass(**config["params"])
            if device is not None:
                est.device = device
            est.classes_ = np.asarray(config["classes"], dtype=np.dtype(config["classes_dtype"]))
            est.n_features_in_ = int(config["n_features_in"])
        except (KeyError, AttributeError, ImportError, TypeError, ValueError) as err:
            raise ValueError(f"config.json in {path} is not a valid saved MIL model: {err!r}") from None
        net = est._build_net(est.n_features_in_, len(est.classes_))
        state = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
        try:
            net.load_state_dict(state)
            scaler = (tensors["scaler.mean"], tensors["scaler.std"])
        except (RuntimeError, KeyError) as err:
            raise ValueError(f"weights in {path} do not match its config.json: {err}") from None
        est.module_ = net.to(est._device()).eval()
        est._scaler = scaler
        return est


class HopfieldMILClassifier(BaseMILClassifier):
    """Multiple-instance classifier: instance MLP -> ``HopfieldPooling`` (learned query) -> linear head.

    Parameters:
        hidden_size: instance embedding size E (width of each embedding layer).
        n_layers: number of embedding layers (Linear -> ReLU -> Dropout).
        num_heads: Hopfield heads H; head_size: association-space size per head.
        beta: inverse temperature β of the pooling (None = 1/sqrt(head_size)).
        normalize: LayerNorm on the query, the stored instances and their projections (as hflayers).
        dropout: dropout in the embedding, on the association weights and before the head.
        bag_dropout: probability of dropping each training instance (at least one kept per bag).
        lr, lr_decay, weight_decay: Adam learning rate, per-epoch exponential decay, L2 weight decay.
        max_epochs, batch_size, patience: training length, bags per step, early-stopping patience.
        validation_fraction: share of bags held out (stratified) for early stopping.
        random_state: seed (int) for split, initialisation, dropout and batching; None = random.
        device: torch device; None = CUDA if available, else CPU.
        num_threads: torch CPU threads during fit/predict (restored afterwards). Small MIL networks
            run fastest single-threaded (measured ~30x slower with 2 threads on a busy 2-core
            machine); None leaves torch's setting alone.

    The defaults work untuned; :meth:`param_grid` is the tuning grid used by ``hopfield reproduce
    --full`` (the paper tunes learning rate, embedding size/depth, heads, β and dropouts).
    Fitted attributes: ``classes_``, ``n_features_in_``, ``module_``, ``n_epochs_``, ``best_epoch_``,
    ``loss_curve_``, ``validation_loss_curve_``; after :meth:`instance_weights`, ``instance_weights_``.
    """

    _pool_name = "hopfield"

    def __init__(self, hidden_size=128, n_layers=2, num_heads=4, head_size=32, beta=None,
                 normalize=True, dropout=0.1, bag_dropout=0.1, lr=1e-3, lr_decay=0.98,
                 weight_decay=1e-3, max_epochs=100, batch_size=8, patience=15,
                 validation_fraction=0.15, random_state=None, device=None, num_threads=1):
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.num_heads = num_heads
        self.head_size = head_size
        self.beta = beta
        self.normalize = normalize
        self.dropout = dropout
        self.bag_dropout = bag_dropout
        self.lr = lr
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.num_threads = num_threads

    @staticmethod
    def param_grid() -> dict[str, list]:
        """Tuning grid (paper's MIL appendix, reduced): used by ``hopfield reproduce mil --full``."""
        return {"lr": [1e-3, 3e-4], "hidden_size": [64, 128, 256], "n_layers": [1, 2],
                "num_heads": [4, 8], "beta": [None, 0.1, 1.0], "dropout": [0.0, 0.1, 0.5],
                "bag_dropout": [0.0, 0.1, 0.5], "weight_decay": [1e-4, 1e-3, 1e-2]}

    def _check_params(self):
        super()._check_params()
        for name in ("num_heads", "head_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"The {name!r} parameter of HopfieldMILClassifier must be an int >= 1. "
                                 f"Got {v!r} instead.")
        if self.beta is not None and (not isinstance(self.beta, (int, float)) or not math.isfinite(self.beta)
                                      or self.beta <= 0):
            raise ValueError(f"The 'beta' parameter of HopfieldMILClassifier must be a positive float or "
                             f"None. Got {self.beta!r} instead.")

    def _build_pooling(self, size):
        return _HopfieldPool(size, self.head_size, self.num_heads, self.beta, self.dropout,
                             bool(self.normalize)), size
