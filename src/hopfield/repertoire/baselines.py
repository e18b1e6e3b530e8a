"""Baselines for repertoire classification: k-mer frequencies + linear models, and a motif oracle.

- :func:`kmer_counts` — (n_repertoires, 20**k) sparse matrix of k-mer frequencies (every window
  of k consecutive amino acids of every sequence, optionally weighted by the sequence counts,
  normalised to sum to one per repertoire; windows with the unknown token are skipped).
- :class:`KmerClassifier` — ``model="l1_logistic"``: standardised k-mer frequencies + L1-regularised
  logistic regression with C chosen by stratified cross-validation (ROC AUC), the baseline that
  Kanduri et al. (2022) found competitive even at very low witness rates; ``model="svm"``: a linear
  SVM on the same features (C by cross-validation).
- :class:`MotifOracle` — knows the implanted motifs: scores a repertoire by the fraction of its
  sequences that contain one exactly, with a threshold fitted on the training repertoires; the
  upper reference of the simulated benchmark.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .data import ALPHABET, UNKNOWN, Repertoire, as_repertoires

__all__ = ["KmerClassifier", "MotifOracle", "kmer_counts", "kmer_names", "sequence_kmer_hits"]


def _window_keys(rep: Repertoire, k: int, chunk: int = 262144):
    """Yield (sequence index (W,), k-mer key (W,)) of all valid windows, chunk by chunk."""
    for s in range(0, len(rep), chunk):
        lens = np.asarray(rep.lengths[s:s + chunk], dtype=np.int64)
        off = rep.offsets[s:s + len(lens) + 1]
        codes = np.asarray(rep.codes[off[0]:off[-1]], dtype=np.int64)  # flat, this chunk
        n_pos = len(codes) - k + 1
        if n_pos <= 0:
            continue
        seq = np.repeat(np.arange(len(lens)), lens)[:n_pos]
        end = (off[1:] - off[0])[seq]
        valid = np.arange(n_pos) + k <= end
        key = np.zeros(n_pos, dtype=np.int64)
        bad = np.zeros(n_pos, dtype=bool)
        for o in range(k):
            c = codes[o:o + n_pos]
            bad |= c == UNKNOWN
            key = key * 20 + (c - 1)
        keep = valid & ~bad
        yield seq[keep] + s, key[keep]


def kmer_counts(X, k: int = 4, *, use_counts: bool = False) -> sp.csr_matrix:
    """(n_repertoires, 20**k) CSR matrix of k-mer frequencies (rows sum to 1)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 6:
        raise ValueError(f"k must be an int in [1, 6], got {k!r}")
    reps = as_repertoires(X)
    rows = []
    for rep in reps:
        total = np.zeros(20 ** k, dtype=np.float64)
        for seq, key in _window_keys(rep, k):
            w = np.asarray(rep.counts, dtype=np.float64)[seq] if use_counts else None
            total += np.bincount(key, weights=w, minlength=20 ** k)
        s = total.sum()
        rows.append(sp.csr_matrix(total / s if s > 0 else total))
    return sp.vstack(rows).tocsr()


def kmer_names(k: int) -> np.ndarray:
    """The k-mer string of every column of :func:`kmer_counts` (20**k,)."""
    idx = np.arange(20 ** k)
    letters = np.array(list(ALPHABET))
    cols = [letters[(idx // 20 ** (k - 1 - o)) % 20] for o in range(k)]
    return np.array(["".join(t) for t in zip(*cols)])


def sequence_kmer_hits(rep: Repertoire, kmers: list[str]) -> np.ndarray:
    """(N,) bool: which sequences of ``rep`` contain one of ``kmers`` exactly (any lengths)."""
    hit = np.zeros(len(rep), dtype=bool)
    for k in sorted({len(m) for m in kmers}):
        keys = np.array([sum((ALPHABET.index(c)) * 20 ** (k - 1 - i) for i, c in enumerate(m))
                         for m in kmers if len(m) == k], dtype=np.int64)
        for seq, key in _window_keys(rep, k):
            hit[seq[np.isin(key, keys)]] = True
    return hit


class KmerClassifier(ClassifierMixin, BaseEstimator):
    """k-mer frequencies -> standardisation -> L1 logistic regression or linear SVM (C by CV).

    Parameters:
        k: k-mer length (4 = 160,000 features, stored sparse).
        model: ``"l1_logistic"`` or ``"svm"``.
        Cs: candidate inverse regularisation strengths (chosen by ``cv``-fold stratified CV on
            ROC AUC).
        cv: folds of the inner cross-validation (reduced automatically for tiny classes).
        use_counts: weight k-mers by the sequence counts.
        random_state: seed of the inner folds and solvers.
    Fitted: ``classes_``, ``C_``, ``coef_`` (20**k,) on the standardised features, ``scale_``.
    """

    def __init__(self, k=4, model="l1_logistic", Cs=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
                 cv=3, use_counts=False, random_state=None):
        self.k = k
        self.model = model
        self.Cs = Cs
        self.cv = cv
        self.use_counts = use_counts
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    def _features(self, X):
        F = kmer_counts(X, self.k, use_counts=self.use_counts)
        return (F @ sp.diags(1.0 / self.scale_)).tocsr()

    def _make(self, C):
        if self.model == "l1_logistic":
            import sklearn
            from sklearn.linear_model import LogisticRegression

            l1 = ({"l1_ratio": 1.0} if tuple(int(p) for p in sklearn.__version__.split(".")[:2])
                  >= (1, 8) else {"penalty": "l1"})
            return LogisticRegression(**l1, C=C, solver="liblinear", max_iter=2000,
                                      random_state=self.random_state)
        from sklearn.svm import LinearSVC
        return LinearSVC(C=C, max_iter=5000, random_state=self.random_state)

    def fit(self, X, y):
        from sklearn.model_selection import GridSearchCV, StratifiedKFold

        if self.model not in ("l1_logistic", "svm"):
            raise ValueError(f"The 'model' parameter of KmerClassifier must be 'l1_logistic' or "
                             f"'svm'. Got {self.model!r} instead.")
        Fm = kmer_counts(X, self.k, use_counts=self.use_counts)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != Fm.shape[0]:
            raise ValueError(f"y must be a 1-D array with one label per repertoire "
                             f"({Fm.shape[0]}), got shape {y.shape}")
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(f"KmerClassifier is binary: y must hold 2 classes, got "
                             f"{self.classes_.tolist()}")
        sq = np.asarray(Fm.multiply(Fm).mean(0)).ravel() - np.asarray(Fm.mean(0)).ravel() ** 2
        self.scale_ = np.where(sq > 1e-20, np.sqrt(np.maximum(sq, 0)), 1.0)
        Z = (Fm @ sp.diags(1.0 / self.scale_)).tocsr()
        folds = min(self.cv, int(np.bincount(y_enc).min()))
        if folds >= 2 and len(self.Cs) > 1:
            est = self._make(self.Cs[0])
            gs = GridSearchCV(est, {"C": list(self.Cs)}, scoring="roc_auc",
                              cv=StratifiedKFold(folds, shuffle=True,
                                                 random_state=self.random_state))
            gs.fit(Z, y_enc)
            self.C_ = float(gs.best_params_["C"])
        else:
            self.C_ = float(self.Cs[len(self.Cs) // 2])
        self.estimator_ = self._make(self.C_).fit(Z, y_enc)
        self.coef_ = np.asarray(self.estimator_.coef_).ravel()
        return self

    def decision_function(self, X):
        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(self._features(X))

    def predict(self, X):
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def top_kmers(self, n: int) -> list[str]:
        """The ``n`` k-mers with the largest positive coefficients (evidence for class 1)."""
        check_is_fitted(self, "estimator_")
        order = np.argsort(-self.coef_)[:n]
        names = kmer_names(self.k)
        return [str(names[i]) for i in order if self.coef_[i] > 0]


class MotifOracle(ClassifierMixin, BaseEstimator):
    """Knows the true motifs: score = fraction of sequences containing one exactly.

    ``fit`` only picks the threshold (midpoint maximising training accuracy) for ``predict``.
    """

    def __init__(self, motifs=()):
        self.motifs = motifs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    def decision_function(self, X):
        motifs = [self.motifs] if isinstance(self.motifs, str) else list(self.motifs)
        if not motifs or any(not isinstance(m, str) or not m or
                             any(c not in ALPHABET for c in m) for m in motifs):
            raise ValueError(f"The 'motifs' parameter of MotifOracle must be a non-empty list of "
                             f"amino-acid strings. Got {self.motifs!r} instead.")
        return np.array([sequence_kmer_hits(r, motifs).mean() for r in as_repertoires(X)])

    def fit(self, X, y):
        s = self.decision_function(X)
        y = np.asarray(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        cand = np.unique(s)
        cuts = (cand[:-1] + cand[1:]) / 2 if len(cand) > 1 else cand
        acc = [((s > c) == y_enc.astype(bool)).mean() for c in cuts]
        self.threshold_ = float(cuts[int(np.argmax(acc))])
        return self

    def predict(self, X):
        check_is_fitted(self, "threshold_")
        return self.classes_[(self.decision_function(X) > self.threshold_).astype(int)]
