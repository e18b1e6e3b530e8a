"""DeepRC's training (Widrich et al. 2020), a mixin of
:class:`~hopfield.repertoire.DeepRCClassifier`: the gradient pass on the most attended plus randomly
sampled sequences of each repertoire, the k-mer enrichment initialisation of the CNN kernels,
sequence-level pretraining, the readout's initialisation, and early stopping on a validation split.

The estimator, its parameters and inference are in :mod:`hopfield.repertoire.model`; the network in
:mod:`hopfield.repertoire.network`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from .data import Repertoire
from .network import length_groups

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


class DeepRCTraining:
    """Training methods of ``DeepRCClassifier`` (uses its parameters, ``_logits``, ``_stream``,
    ``_chunk`` and ``classes_``)."""
    def _n_top(self, rep: Repertoire) -> int:
        """How many of ``rep``'s sequences a gradient pass takes as the most attended (0: the
        repertoire is small enough to take whole, or the selection is uniform)."""
        if len(rep) <= self.n_train_sequences:
            return 0
        return round(self.top_fraction * self.n_train_sequences)

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
        nothing unless the kernel fires. The other kernels keep their random initialisation. Returns
        a callable that restores the initialised kernels (the warm start holds them fixed), or None
        if nothing was seeded.
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
        # per-repertoire frequency sums
        f1, f2 = np.zeros((n_cls, 20 ** k)), np.zeros((n_cls, 20 ** k))
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
                 emb.position.bias[idx].detach().clone(),
                 net.project.weight[:, idx].detach().clone())
        return lambda: _restore_kernels(net, idx, *saved)

    def _pretrain(self, net, reps, y, tr, rs, opt, keep=None, batch: int = 512, bags: int = 8):
        """Sequence-level warm start (single-instance learning): every sequence inherits its
        repertoire's label; each step draws ``bags`` training repertoires (balanced classes) and
        ``batch // bags`` random sequences of each; k-mer-initialised kernels (``keep``) are held
        fixed during the warm start (the noisy single-instance gradient would otherwise erase
        them before the sequence classifier learns to use them). Then the pooling is seeded to
        attend by the learned sequence log-odds (:meth:`DeepRCNet.seed_attention`)."""
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
            groups = length_groups(
                np.concatenate([reps[i].lengths[j] for i, j in zip(chosen, idxs)]))
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
                rs.choice(n, max(1, round(share * n)), replace=False))
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
