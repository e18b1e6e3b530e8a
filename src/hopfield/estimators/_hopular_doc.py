"""The parameter documentation shared by ``HopularClassifier`` and ``HopularRegressor``
(:mod:`hopfield.estimators.hopular`): every option, its ``"auto"`` rule and where each default was
chosen (docs/hopular-defaults.md)."""

PARAMS_DOC = """
    Parameters:
        embedding_size: width E of each feature's embedding token (the network is F·E wide for
            F = n_features + 1 tokens).
        num_blocks: Hopular blocks (paper: 4).
        num_heads, head_size: heads and per-head size of both Hopfield modules.
        dropout: dropout on embeddings, association weights and the head; ``"auto"``
            (default) = 0.1 when a network trains on at most 1,024 rows (the count
            ``max_iter="auto"`` uses: the rows passed to ``fit`` minus the network's validation
            split), 0 above. The 0.1 was chosen on the small UCI sets; 0 above 1,024 rows on the
            validation rows of six mid-size sets over two seeds (docs/hopular-defaults.md, D4:
            better on 4 of 6, e.g. diamonds' RMSE 7.9 % lower, letter +0.62 points; shuttle
            -0.06 and credit -0.22 points). The value used is ``dropout_``.
        mask_probability: BERT-style masking probability of each feature during training.
        learning_rate, weight_decay: LAMB settings (wrapped in Lookahead, k=5, α=0.8).
        learning_rate_schedule: how the learning rate changes over the epochs. ``"constant"``:
            never (training stops once the validation loss has not improved for
            ``n_iter_no_change`` epochs). ``"cooldown"``: constant until the patience runs out
            at epoch e, then, instead of stopping, annealed to 0 along a half cosine over
            max(``n_iter_no_change``, ⌈e / 2⌉) more epochs (never past ``max_iter``).
            ``"cosine"``: the reference code's schedule — held for the first half of
            ``max_iter``, annealed along a half cosine over the second half; every epoch runs
            (no patience). Every schedule keeps the epoch with the best validation loss.
            ``"auto"`` (default) = ``"cooldown"`` when a network trains on more than 1,024 rows,
            ``"constant"`` up to (docs/hopular-defaults.md, "C" and "C3": over two seeds,
            diamonds' validation RMSE 8.2 % and ames' 8.7 % lower; letter +0.88, shuttle +0.09,
            credit +1.91, satellite +1.17, churn +0.00 points). The schedule used is
            ``learning_rate_schedule_``.
        batch_size: rows per step; ``"auto"`` = clip(n_train // 8, 32, 512) up to 4,096 training
            rows, 256 above, and for wide tables at most 2²⁷ / (num_heads · num_blocks · F²)
            rows (F tokens = columns + 1): with dropout on CPU every feature–feature score is
            kept for the backward pass, ≈ 9 bytes each. 180 columns fit under the cap; 1,000
            columns train in 8-row steps (one epoch on 400 rows: 5.2 GB peak RSS, 13.4 GB
            without the cap).
        max_iter: maximum epochs; ``"auto"`` = 100 when a network trains on at most 1,024 rows,
            300 above (above 4,096 rows epochs of 2,048 rows, see ``epoch_size``: at most 614,400
            rows; on the full letter set 100 epochs ran out with the best epoch at 99, 92.1 %
            validation accuracy vs 95.5 % with 300 — docs/hopular-log.md, "Mid-size sets at full
            size"; between 1,024 and 4,096 rows the cool-down of churn and satellite ran into
            100 epochs — docs/hopular-defaults.md, "C3").
        anneal_iter: epochs over which γ falls from 1 to 0.
        n_iter_no_change, tol, early_stopping, validation_fraction: early stopping on the target
            loss of a held-out split (stratified for classification); patience counts only
            after the annealing.
        memory_size: stored rows per training step (all rows when the training set is smaller;
            prediction always retrieves from all rows).
        chunk_size: stored rows per chunk of the streamed retrieval.
        categorical_features: column indices / names / bool mask of categorical columns (besides
            pandas category/object/string/bool columns).
        numeric_embedding: ``"linear"`` (the paper's w_j·x_j + b_j), ``"piecewise"`` (the
            piecewise-linear encoding of Gorishniy et al. 2022 over 16 bins per numeric column
            whose edges are the quantiles of the encoded fit rows; every value clipped into
            [0, 1] per bin, so any finite input stays finite), ``"both"`` (the ensemble fitted
            with each embedding, the same seeds, and all its networks kept: twice the networks,
            outputs averaged) or ``"auto"`` (default): when a network trains on more than 1,024
            and at most 4,096 rows, X has a numeric column and early stopping is on, the
            ensemble is fitted with both embeddings (the same seeds, so the same validation
            splits; the fit costs about twice as much there) and the best of three ensembles is
            kept — the linear networks, the piecewise ones, or all of them averaged — by their
            mean in-fit validation target loss (network m of each embedding shares its
            validation rows; ties: the first of linear, piecewise, both); above 4,096 rows
            ``"piecewise"`` for a regressor (rule NF: diamonds' validation RMSE −12.9 % and
            −14.0 % on two seeds, with ``epoch_size``'s larger regression slices), ``"linear"``
            for a classifier; ``"linear"`` otherwise. Chosen by rules NA and NB
            (docs/hopular-defaults.md, "NA", "NB"): over two seeds on the validation rows of
            the four mid-size sets in that range, churn +1.90 points (piecewise kept),
            satellite +0.16, credit +0.00 (linear kept), ames −1.1 % RMSE (both kept; NA alone
            +1.1 %). ``"piecewise"`` alone was 1.4 points below
            ``"linear"`` on the five small UCI sets' validation rows ("Numeric preprocessing"),
            hence ``"linear"`` below 1,024 rows. The choice is ``numeric_embedding_``, the
            candidates' scores (−loss) ``numeric_embedding_scores_``; both are saved.
        numeric_transform: how numeric columns enter the network. ``"standard"`` (default):
            (x − mean) / std over the training rows. ``"quantile"``: each standardised column
            through scikit-learn's ``QuantileTransformer(output_distribution="normal")`` fitted
            on the rows passed to ``fit`` (``n_quantiles`` = min(1,000, n rows); above 10,000
            rows the quantiles come from a subsample of 10,000 drawn with ``random_state``), so
            skewed or heavy-tailed columns become roughly standard normal; every output lies in
            [−5.2, 5.2] (a constant column, or a value far outside the training range, stays
            finite). Missing values use the learned missing embedding either way. The quantile
            table is saved with the weights. Not the default: on the five small UCI sets'
            validation rows it did not beat standardisation (docs/hopular-defaults.md, "Numeric
            preprocessing").
        random_state: seed; ``None`` = not reproducible. device: ``"cpu"``, ``"cuda"``,
            ``"auto"``. verbose: print the validation loss per epoch.
        epoch_size: training rows per epoch; ``"auto"`` = all rows up to 4,096, else 2,048 rows
            (a regressor's: 8,192, rule NF) of a running seeded permutation (every row once per
            ceil(n_train / slice) epochs), so an epoch's cost — and the annealing/early-stopping
            schedule counted in epochs (γ over 20 slices, patience 10 slices with the defaults) —
            does not grow with N.
            Per-epoch validation then retrieves from a fixed seeded subset of 4,096 stored rows
            and scores at most 2,048 validation rows (a fixed seeded subset); prediction always
            retrieves from all rows.
        n_members: networks trained independently (seed + m: own initialisation, validation
            split, masks and memory subsets; each keeps its own copy of the stored rows) whose
            predicted probabilities / values are averaged; ``"auto"`` = 2 when a network trains
            on at most 4,096 rows (4 for a regressor from 1,025 rows), above that 1 for a
            classifier (cost) and 3 for a regressor. Two classifier members: on the five small
            UCI sets' validation rows 74.4 % vs 72.1 / 73.8 % for either alone; on the full
            satellite set (4,053 training rows per network) validation accuracy 90.2 % vs
            88.7 % with one. Four regressor members: on ames (rule NK) validation RMSE 1.3 %
            lower than with two, over two seeds, at twice the fit time; at 900 rows (diamonds)
            no gain. Three regressor members on the full diamonds set (rule NJ): validation
            RMSE 1.3 % and 3.1 % lower than with one on two seeds, at 3x the fit time. The
            fitted networks are counted by ``n_members_``.
        num_threads: torch CPU threads during fit / predict (restored afterwards); ``None`` = one
            thread when a network trains on at most 4,096 rows (tiny operations only pay the
            threads' synchronisation), torch's current setting otherwise.

    Every ``"auto"`` rule (``batch_size``, ``max_iter``, ``epoch_size``, ``n_members``,
    ``dropout``, ``learning_rate_schedule``, ``numeric_embedding``) and
    ``num_threads=None`` counts the same rows: those a network trains on, i.e. the rows passed
    to ``fit`` minus its validation split (``validation_fraction``, stratified for
    classification; its size does not depend on the member), saved as ``arch_["n_train"]``.

    Fitted attributes: ``module_`` (:class:`HopularNet` holding the stored rows, or a
    :class:`HopularEnsemble` of ``n_members`` of them), ``n_iter_`` (most epochs of any member),
    ``best_iteration_`` (one per member), ``loss_curve_`` (target loss per epoch),
    ``validation_scores_`` (−validation target loss per epoch) and ``epoch_seconds_`` (these three
    of member 0), ``n_features_in_``,
    ``feature_names_in_`` (DataFrames), ``encoder_config_`` (column types and categories),
    ``dropout_`` (the dropout used, also saved in ``arch_``), ``learning_rate_schedule_`` (the
    schedule used, also saved in ``arch_``), ``numeric_embedding_`` and
    ``numeric_embedding_scores_`` (the embedding kept and each candidate ensemble's mean in-fit
    validation score, −loss; saved in ``arch_``). ``n_members_`` counts the fitted networks
    (twice ``n_members`` when ``"both"`` is kept).
"""
