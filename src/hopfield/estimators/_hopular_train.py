"""Hopular's training loop (paper §3.2), a mixin of the Hopular estimators: BERT-style feature
masking, the annealed loss γ·L_features + (1 − γ)·L_target, LAMB + Lookahead, memory sampling,
early stopping on the slow weights' validation target loss, and the large-N epoch schedule.

The network is :mod:`._hopular_net`; the estimators and their parameters are in
:mod:`hopfield.estimators.hopular`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

#: ``epoch_size="auto"``: training rows per epoch beyond which an epoch is a slice of a running
#: permutation (the cost of an epoch stops growing with N)
_AUTO_EPOCH_SIZE = 4096
#: above ``_AUTO_EPOCH_SIZE`` training rows, ``epoch_size="auto"`` = ``_AUTO_SLICE`` rows per
#: epoch (a slice) and ``batch_size="auto"`` = ``_AUTO_BATCH_LARGE`` rows per step. Chosen on the
#: validation loss of the 50,000 x 50 benchmark (benchmarks/hopular_50k.py; docs/hopular-log.md,
#: "How the large-N training setting was chosen"): with 4,096-row slices and 512-row steps the
#: default schedule took 74 epochs (≈ 900 CPU-s); 2,048-row slices of 256-row steps reach a lower
#: validation loss than 2,048-row slices of 512-row steps in the same ≈ 400 CPU-s (more updates per
#: row seen)
_AUTO_SLICE = 2048
_AUTO_BATCH_LARGE = 256
#: a regressor's slice above ``_AUTO_EPOCH_SIZE`` rows: 4x the rows per epoch, so patience,
#: annealing and max_iter see 4x the rows (rule NF, diamonds: docs/hopular-defaults.md)
_AUTO_SLICE_REGRESSION = 8192
#: networks that train on at most this many rows are in the small-data setting: ``dropout="auto"``
#: keeps attention dropout, ``learning_rate_schedule="auto"`` keeps the constant rate and
#: ``max_iter="auto"`` the 100-epoch budget. Every small benchmark set (at most 606 training rows)
#: and the quick mode's mid-size networks (900 rows) lie below it. See ``_AUTO_DROPOUT`` and
#: ``_AUTO_SCHEDULE_ROWS`` for the rules that chose it
_SMALL_DATA_ROWS = 1024
#: ``max_iter="auto"``: epochs up to ``_SMALL_DATA_ROWS`` training rows / above. For large sets
#: (2,048-row slices above ``_AUTO_EPOCH_SIZE`` rows) 100 slices (204,800 rows) ran out on the full
#: letter set (14,000 rows: best epoch 99 of 100, validation accuracy 92.1 %); 300 reached 95.5 %
#: (stopped by patience at 174), chosen on the split's validation rows (docs/hopular-log.md,
#: "Mid-size sets at full size"). Between 1,024 and 4,096 rows the larger budget came with the
#: cool-down (rule C3): both churn and satellite ran into 100 epochs before it was over
_AUTO_MAX_ITER = 100
_AUTO_MAX_ITER_LARGE = 300
#: stored rows that per-epoch validation retrieves from (a fixed seeded subset of the training
#: rows when there are more); prediction always retrieves from all stored rows
_VAL_MEMORY = 4096
#: validation rows scored per epoch (a fixed seeded subset of the validation split when it is
#: larger; only large training sets have more than this many validation rows)
_VAL_ROWS = 2048


#: ``batch_size="auto"``: at most this many feature–feature score entries per training step
#: (rows × heads × blocks × tokens²). With attention dropout on CPU, scaled_dot_product_attention
#: takes its math path and keeps every score matrix for the backward pass (measured ≈ 9 bytes per
#: entry, i.e. ≈ 1.2 GB at the cap, plus ≈ 40 kB per token and row). dna (181 tokens, 251-row
#: steps, 131.6 M entries: 4.1 GB peak RSS for one epoch) is the widest set of the benchmark and
#: lies just below the cap, so no benchmark fit changes; 1,000 columns train in 8-row steps
#: instead of 45 (400 rows: one epoch 5.2 GB peak RSS instead of 13.4 GB, the same CPU time)
_AUTO_SCORE_ENTRIES = 2 ** 27


def _auto_batch_size(n_tr: int, n_tokens: int, num_heads: int, num_blocks: int) -> int:
    """``batch_size="auto"`` for a network trained on ``n_tr`` rows of ``n_tokens`` tokens:
    clip(n_tr // 8, 32, 512) up to ``_AUTO_EPOCH_SIZE`` rows, ``_AUTO_BATCH_LARGE`` above, then
    capped so a step holds at most ``_AUTO_SCORE_ENTRIES`` feature–feature scores (at least 1)."""
    bs = int(np.clip(n_tr // 8, 32, 512)) if n_tr <= _AUTO_EPOCH_SIZE else _AUTO_BATCH_LARGE
    cap = _AUTO_SCORE_ENTRIES // (num_heads * num_blocks * n_tokens ** 2)
    return max(1, min(bs, cap))


def _resolve_max_iter(max_iter, n_tr: int) -> int:
    """Epoch budget of one network trained on ``n_tr`` rows (``"auto"``: see ``_AUTO_MAX_ITER``)."""
    if max_iter != "auto":
        return int(max_iter)
    return _AUTO_MAX_ITER if n_tr <= _SMALL_DATA_ROWS else _AUTO_MAX_ITER_LARGE


#: ``dropout="auto"``: ``_AUTO_DROPOUT`` when a network trains on at most ``_AUTO_DROPOUT_ROWS``
#: rows (the small-data default, unchanged: the 21 small sets have at most 606 training rows, the
#: quick mode's mid-size networks 900), 0 above. Adopted by rule D4, fixed before its runs
#: (docs/hopular-defaults.md, "D4"): over model seeds 0 and 1 on the validation rows of six
#: mid-size sets, dropout 0 was better on 4 (letter +0.62, satellite +0.70, churn +0.60 points,
#: diamonds -7.9 % RMSE), worse on 2 (shuttle -0.06, credit -0.22 points)
_AUTO_DROPOUT = 0.1
_AUTO_DROPOUT_ROWS = _SMALL_DATA_ROWS


def _resolve_dropout(dropout, n_tr: int) -> float:
    """Dropout of a network trained on ``n_tr`` rows (``"auto"``: see ``_AUTO_DROPOUT``)."""
    if isinstance(dropout, str) and dropout == "auto":
        return _AUTO_DROPOUT if n_tr <= _AUTO_DROPOUT_ROWS else 0.0
    return float(dropout)


#: ``learning_rate_schedule="auto"``: ``"cooldown"`` when a network trains on more than
#: ``_SMALL_DATA_ROWS`` rows, ``"constant"`` up to it (small-data fits unchanged). Rule C (fixed
#: before its runs, docs/hopular-defaults.md, "C") adopted it above 4,096 rows: over model seeds 0
#: and 1 on the validation rows of split 0, diamonds' RMSE fell 8.2 %, letter and shuttle gained
#: accuracy, and the 50,000 x 50 fit stayed within its 5-minute target. Rule C3 ("C3") lowered the
#: threshold to 1,024 rows, with ``max_iter="auto"`` = 300 there: credit +1.91, satellite +1.17,
#: churn +0.00 points, ames -8.7 % RMSE (two seeds), dna +0.00 (one seed)
_AUTO_SCHEDULE_ROWS = _SMALL_DATA_ROWS


def _resolve_schedule(schedule: str, n_tr: int) -> str:
    """Learning-rate schedule of a network trained on ``n_tr`` rows (``_AUTO_SCHEDULE_ROWS``)."""
    if schedule == "auto":
        return "cooldown" if n_tr > _AUTO_SCHEDULE_ROWS else "constant"
    return schedule


#: ``numeric_embedding="auto"``: networks that train on more than ``_SMALL_DATA_ROWS`` and at most
#: ``_AUTO_EMBEDDING_ROWS`` rows (where ``n_members="auto"`` trains two) are fitted with both
#: numeric embeddings, and the best of three ensembles by mean in-fit validation target loss is
#: kept: the linear networks, the piecewise ones, or all of them averaged (``"both"``); the fit
#: costs twice as much there. Below: ``"linear"`` (the piecewise embedding lost 1.4 points on
#: the small sets' validation rows, whose in-fit validation splits of at most ~100 rows are too
#: small to choose on); above: ``"linear"`` for a classifier (cost: one network on 2,048-row
#: epochs), ``"piecewise"`` for a regressor (rule NF). Rules NA, NB, NF (docs/hopular-defaults.md)
_AUTO_EMBEDDING_ROWS = 4096


def _embedding_candidates(embedding: str, n_inputs: int, n_tr: int, validated: bool,
                          classifier: bool = True) -> list[str]:
    """Numeric embeddings to fit for ``numeric_embedding=embedding`` on a network trained on
    ``n_tr`` rows with ``n_inputs`` numeric input columns (``validated``: early stopping on)."""
    if embedding == "both":
        return ["linear", "piecewise"]
    if embedding != "auto":
        return [embedding]
    if validated and n_inputs and _SMALL_DATA_ROWS < n_tr <= _AUTO_EMBEDDING_ROWS:
        return ["linear", "piecewise"]
    big_regression = n_inputs and not classifier and n_tr > _AUTO_EMBEDDING_ROWS
    return ["piecewise"] if big_regression else ["linear"]


#: ``numeric_embedding="piecewise"``: bins per numeric column (edges = training quantiles)
_N_BINS = 16


def _set_embedding(a: dict, emb: str) -> None:
    """arch_ of a network with numeric embedding ``emb`` (``n_bins`` only when piecewise or both,
    where the second half of the members is piecewise, see ``_member_bins``)."""
    a.pop("n_bins", None)
    if emb in ("piecewise", "both"):
        a["n_bins"] = _N_BINS


def _member_bins(emb: str, m: int, n_members: int) -> int | None:
    """Bins of member ``m`` of a fitted ensemble with numeric embedding ``emb`` (``None``: the
    arch_'s); ``"both"`` holds the linear networks first, then the piecewise ones."""
    if emb != "both":
        return None
    return 0 if m < n_members // 2 else _N_BINS


def _ensemble_scores(fits: dict, full, arch: dict, classifier: bool) -> dict[str, float]:
    """Each candidate ensemble's score (−mean in-fit validation target loss) from its networks'
    best-epoch outputs on their validation rows. The candidates' members m share their seed, so
    linear_m and piecewise_m share their rows; "both" scores their averaged outputs per m, as
    the ensemble averages its members (probabilities / standardised predictions)."""
    num_t, _, cat_t = full
    scores = {}
    for emb, (_, logs) in fits.items():
        if any(lg["best_score"] is None for lg in logs):
            continue
        if emb != "both":  # the single networks' scores as the training loop measured them
            scores[emb] = float(np.mean([lg["best_score"] for lg in logs]))
            continue
        n = len(logs) // 2
        losses = []
        for lin, pw in zip(logs[:n], logs[n:]):
            rows = torch.as_tensor(lin["val_rows"], device=num_t.device)
            out = (lin["val_out"] + pw["val_out"]) / 2
            if classifier:
                y = cat_t[rows, -1]
                losses.append(float(F.nll_loss(out.clamp_min(1e-12).log(), y)))
            else:
                y = num_t[rows, arch["target"]]
                losses.append(float(((out[:, 0] - y) ** 2).mean()))
        scores[emb] = -float(np.mean(losses))
    return scores


def _cosine(t: float) -> float:
    """½ (1 + cos πt): 1 at t = 0 falling to 0 at t = 1."""
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, t))))


def _cooldown_epochs(trigger: int, patience: int, max_iter: int) -> int:
    """``learning_rate_schedule="cooldown"``: epochs of the cosine cool-down that starts when the
    patience runs out at epoch ``trigger`` — half the epochs so far, at least ``patience``, and
    never past ``max_iter``."""
    return max(0, min(max(patience, math.ceil(trigger / 2)), max_iter - trigger))


class HopularTraining:
    """Training methods of ``_HopularBase`` (uses its ``_hp``, ``_is_classifier``, ``_new_net``)."""
    def _losses(self, net, out, num, absent, cat, masked):
        """(feature loss, target loss) on the masked entries of one batch."""
        pred_num, logits = out  # (B, Fn), (B, Fc, Kmax)
        t, n_num = net.target, net.n_num
        m_num = masked[:, :n_num] & ~absent  # (B, Fn) masked and present
        cards = torch.as_tensor(net.cards, dtype=torch.long, device=cat.device)
        m_cat = masked[:, n_num:] & (cat < cards)  # missing codes carry no label
        se = (pred_num - num) ** 2  # (B, Fn)
        kmax = logits.shape[-1]
        ce = F.cross_entropy(logits.reshape(-1, kmax), cat.clamp(max=kmax - 1).reshape(-1),
                             reduction="none").view(cat.shape)  # (B, Fc)
        ce = torch.where(m_cat, ce, torch.zeros_like(ce))
        feat_num, feat_cat = m_num.clone(), m_cat.clone()
        if self._is_classifier:
            tgt = ce[:, t].mean()
            feat_cat[:, t] = False
        else:
            tgt = se[:, t].mean()
            feat_num[:, t] = False
        n_feat = feat_num.sum() + feat_cat.sum()
        feat = ((se * feat_num).sum() + (ce * feat_cat).sum()) / n_feat.clamp_min(1)
        return feat, tgt


    def _train_member(self, full, y_enc: np.ndarray, seed: int, dev: torch.device):
        """Train one network on all rows ``full`` = (num, missing, cat) tensors (target
        included) minus its own validation split; returns (net with every row as memory, log)."""
        from ._hopular_optim import lamb_lookahead

        hp = self._hp
        num_t, miss_t, cat_t = full
        rng = np.random.RandomState(seed)
        torch.manual_seed(seed)  # initialisation of this member
        n = len(num_t)
        val = self._split(n, y_enc if self._is_classifier else None, rng)
        train = np.setdiff1d(np.arange(n), val)
        net = self._new_net().to(dev)
        if net.embed.n_bins:
            net.set_bin_edges(self._bin_edges)
        net.set_memory(num_t[train], miss_t[train], cat_t[train])
        n_tr = len(train)
        F_ = net.n_num + len(net.cards)
        # large sets: more, smaller steps per row seen (see _AUTO_SLICE); wide sets: capped
        bs = (int(hp.batch_size) if hp.batch_size != "auto"
              else _auto_batch_size(n_tr, F_, hp.num_heads, hp.num_blocks))
        bs = min(bs, n_tr)
        opt = lamb_lookahead(net.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        schedule = _resolve_schedule(hp.learning_rate_schedule, n_tr)
        cool_start, cool_len = None, 0  # "cooldown": epoch the patience ran out, cool-down length
        target_tok = net.target % F_
        cards = torch.as_tensor(net.cards, dtype=torch.long, device=dev)
        gen = torch.Generator().manual_seed(seed)
        max_iter = _resolve_max_iter(hp.max_iter, n_tr)
        anneal = max(1, min(hp.anneal_iter, max_iter))
        best, best_state, bad = math.inf, None, 0
        log = {"loss": [], "val": [], "seconds": [], "best_iter": 0}
        # rows per epoch: all training rows up to `epoch_size`, else the next `epoch_size` rows of
        # a running seeded permutation (every row is visited once per ceil(n_tr / epoch_size)
        # epochs), so an epoch's cost does not grow with N
        slice_ = _AUTO_SLICE if self._is_classifier else _AUTO_SLICE_REGRESSION  # rule NF
        n_ep = (min(n_tr, int(hp.epoch_size)) if hp.epoch_size != "auto"
                else n_tr if n_tr <= _AUTO_EPOCH_SIZE else min(n_tr, slice_))
        step, steps_per_epoch = 0, math.ceil(n_ep / bs)
        train_mem = (net.mem_num, net.mem_absent, net.mem_cat)
        val_mem = None
        if len(val) and n_tr > _VAL_MEMORY:
            sub = torch.as_tensor(np.sort(rng.permutation(n_tr)[:_VAL_MEMORY]), device=dev)
            val_mem = tuple(t[sub] for t in train_mem)
        # rows scored by the per-epoch validation (all of them up to _VAL_ROWS); drawn after every
        # other use of rng, so smaller sets train exactly as before
        val_rows = val if len(val) <= _VAL_ROWS else np.sort(rng.permutation(val)[:_VAL_ROWS])
        order, pos = torch.randperm(n_tr, generator=gen).to(dev), 0
        epoch = 0
        for epoch in range(1, max_iter + 1):
            t0 = time.perf_counter()
            # learning rate of this epoch: "cosine" holds it for the first half of max_iter, then
            # anneals it (the reference code's schedule); "cooldown" anneals it once the patience
            # has run out; "constant" never changes it
            if schedule == "cosine":
                half = max_iter // 2
                f = 1.0 if epoch <= half else _cosine((epoch - half) / (max_iter - half + 1))
            elif cool_start is not None:
                f = _cosine((epoch - cool_start) / (cool_len + 1))
            else:
                f = 1.0
            for g in opt.param_groups:
                g["lr"] = hp.learning_rate * f
            net.train()
            if pos + n_ep > n_tr:  # reshuffle when the running permutation is used up
                order, pos = torch.randperm(n_tr, generator=gen).to(dev), 0
            perm, pos = order[pos:pos + n_ep], pos + n_ep
            total = 0.0
            for i in range(0, n_ep, bs):
                b = perm[i:i + bs]  # rows of the memory (= training rows)
                gamma = 0.5 * (1 + math.cos(math.pi * min(1.0, step / (anneal * steps_per_epoch))))
                step += 1
                mem_idx = (torch.randperm(n_tr, generator=gen)[:hp.memory_size].to(dev)
                           if n_tr > hp.memory_size else None)
                bn, ba, bc = net.mem_num[b], net.mem_absent[b], net.mem_cat[b]
                masked = torch.rand(len(b), F_, generator=gen).to(dev) < hp.mask_probability
                masked[:, target_tok] = True
                q_absent = ba | masked[:, :net.n_num]
                m_cat = masked[:, net.n_num:]
                unknown = torch.rand(m_cat.shape, generator=gen).to(dev) < 0.1
                q_cat = torch.where(m_cat, torch.where(unknown, cards + 1, cards), bc)
                # the query never retrieves its own stored row (needs >= 2 stored rows)
                out = net(bn, q_absent, q_cat, mem_idx, self_idx=b if n_tr > 1 else None)
                lf, lt = self._losses(net, out, bn, ba, bc, masked)
                loss = gamma * lf + (1 - gamma) * lt
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the training loss became non-finite at epoch "
                                             f"{epoch}; lower learning_rate")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(lt.detach()) * len(b)
            log["loss"].append(total / n_ep)
            log["seconds"].append(time.perf_counter() - t0)
            if not len(val):
                continue
            opt.backup_and_load_cache()  # evaluate the slow (Lookahead) weights
            net.eval()
            if val_mem is not None:  # validation retrieves from a fixed subset of stored rows
                net.set_memory(*val_mem)
            vloss, vout = self._val_loss(net, num_t[val_rows], miss_t[val_rows],
                                         cat_t[val_rows], target_tok)
            if val_mem is not None:
                net.set_memory(*train_mem)
            log["val"].append(-vloss)
            if hp.verbose:
                print(f"epoch {epoch}: validation target loss {vloss:.4f} "
                      f"({log['seconds'][-1]:.1f} s)")
            if vloss < best - hp.tol:
                best, bad = vloss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()
                              if not k.startswith("mem_")}
                log["best_iter"] = epoch
                log["val_out"] = vout  # the best epoch's outputs on the in-fit validation rows
            elif epoch > anneal and cool_start is None:
                bad += 1
            opt.clear_and_load_backup()
            if cool_start is not None and epoch >= cool_start + cool_len:
                break  # the cool-down is over
            if bad >= hp.n_iter_no_change and schedule != "cosine" and cool_start is None:
                cool_len = (_cooldown_epochs(epoch, hp.n_iter_no_change, max_iter)
                            if schedule == "cooldown" else 0)
                if cool_len == 0:
                    break
                cool_start = epoch
                if hp.verbose:
                    print(f"epoch {epoch}: no improvement for {bad} epochs; cosine cool-down "
                          f"of the learning rate over {cool_len} epochs")
        if best_state is not None:
            net.load_state_dict(best_state, strict=False)
        else:
            opt.backup_and_load_cache()
            log["best_iter"] = epoch
        net.set_memory(num_t, miss_t, cat_t)  # predictions retrieve from every fitted row
        log["n_iter"] = epoch
        log["val_rows"] = val_rows
        log["best_score"] = -best if log["val"] else None
        return net.eval(), log

    def _split(self, n: int, y_codes: np.ndarray | None, rng) -> np.ndarray:
        hp = self._hp
        if not hp.early_stopping or hp.validation_fraction == 0 or n < 4:
            return np.empty(0, np.int64)
        if y_codes is None:
            return np.sort(rng.permutation(n)[:max(1, round(hp.validation_fraction * n))])
        val = []
        for c in np.unique(y_codes):
            idx = rng.permutation(np.flatnonzero(y_codes == c))
            if len(idx) >= 2:
                k = round(hp.validation_fraction * len(idx))
                val.append(idx[:max(1, min(len(idx) - 1, k))])
        return np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)

    @torch.no_grad()
    def _val_loss(self, net, num, miss, cat, target_tok) -> tuple[float, torch.Tensor]:
        """(mean target loss, outputs) on validation rows; outputs are the class probabilities
        (classifier, (n, K)) or standardised predictions (regressor, (n, 1)), as the ensemble
        averages them (see :func:`_ensemble_scores`)."""
        tot, outs = 0.0, []
        for s in range(0, len(num), 1024):
            n_, m_, c_ = num[s:s + 1024], miss[s:s + 1024].clone(), cat[s:s + 1024].clone()
            if self._is_classifier:
                y = c_[:, -1].clone()
                c_[:, -1] = net.cards[-1]  # the target is masked
                _, logits = net.predict_stream(n_, m_, c_, self._hp.chunk_size)
                logits = logits[:, -1, :net.cards[-1]]
                tot += float(F.cross_entropy(logits, y, reduction="sum"))
                outs.append(logits.softmax(-1))
            else:
                y = n_[:, target_tok].clone()
                m_[:, target_tok] = True
                pred, _ = net.predict_stream(n_, m_, c_, self._hp.chunk_size)
                tot += float(((pred[:, target_tok] - y) ** 2).sum())
                outs.append(pred[:, target_tok:target_tok + 1])
        return tot / len(num), torch.cat(outs)
