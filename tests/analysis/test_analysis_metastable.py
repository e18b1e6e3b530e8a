"""metastable_k / head_classes against hand-computed cases, a naive reference and properties."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hopfield.analysis import CLASS_NAMES, classify_ratio, head_classes, metastable_k
from hopfield.analysis.metastable import median


def naive_k(row, threshold=0.9):
    """Float64 loop: add the largest weights until their sum reaches the threshold."""
    row = sorted((float(v) for v in row), reverse=True)
    total = sum(row)
    acc = 0.0
    for i, v in enumerate(row, start=1):
        acc += v / total
        if acc >= threshold - 1e-6:
            return i
    return len(row)


def test_hand_computed_rows():
    w = torch.tensor([
        [0.5, 0.4, 0.1, 0.0],    # 0.5 + 0.4 = 0.9 exactly: k = 2
        [0.25, 0.25, 0.25, 0.25],  # needs all four: 1.0 ≥ 0.9 only at k = 4 (0.75 < 0.9)
        [0.02, 0.95, 0.02, 0.01],  # one weight is enough
        [0.3, 0.3, 0.2, 0.2],     # 0.3+0.3+0.2 = 0.8 < 0.9: k = 4
    ])
    assert metastable_k(w).tolist() == [2, 4, 1, 4]
    assert metastable_k(w, threshold=0.5).tolist() == [1, 2, 1, 2]
    assert metastable_k(w, threshold=1.0).tolist() == [3, 4, 4, 4]


def test_dtype_and_shape():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        w = torch.tensor([[0.5, 0.4, 0.1]], dtype=dtype)
        k = metastable_k(w)
        assert k.dtype == torch.long and k.shape == (1,) and int(k) == 2
    w = torch.softmax(torch.randn(2, 3, 5, 7), -1)
    assert metastable_k(w).shape == (2, 3, 5)


def test_key_mask_excludes_and_renormalises():
    # Masked key 0 carries 0.6 of the mass; over the real keys (0.2, 0.1, 0.1)/0.4 =
    # (0.5, 0.25, 0.25): 0.5 + 0.25 = 0.75 < 0.9, so k = 3 = every real key.
    w = torch.tensor([[0.6, 0.2, 0.1, 0.1]])
    mask = torch.tensor([True, False, False, False])
    assert metastable_k(w).tolist() == [3]  # unmasked: 0.6 + 0.2 = 0.8 < 0.9 ≤ 0.9
    assert metastable_k(w, mask).tolist() == [3]


def test_query_mask_gives_zero_and_is_excluded_from_medians():
    w = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])  # (B=1, H=1, L=2, N=2): k = 1, 2
    q = torch.tensor([[False, True]])  # second query is padding
    assert metastable_k(w[0, 0], query_mask=q[0]).tolist() == [1, 0]
    hc = head_classes(w, query_mask=q)
    assert hc.n_queries == 1 and float(hc.k_bar[0]) == 1.0


def test_padding_invariance_against_unpadded():
    torch.manual_seed(1)
    B, H, N = 3, 2, 9
    lengths = [9, 6, 4]
    w = torch.zeros(B, H, N, N)
    pad = torch.ones(B, N, dtype=torch.bool)
    ks = []
    for b, n in enumerate(lengths):
        real = torch.softmax(3 * torch.randn(H, n, n), -1)
        w[b, :, :n, :n] = real
        w[b, :, n:, :] = torch.softmax(torch.randn(H, N - n, N), -1)  # junk on padded queries
        pad[b, :n] = False
        ks.append(metastable_k(real))  # (H, n)
    got = head_classes(w, pad, query_mask=pad)
    k_all = torch.cat([k.double() for k in ks], -1)  # (H, Q)
    n_all = torch.cat([torch.full((H, n), float(n)) for n in lengths], -1).double()
    assert got.n_queries == sum(lengths)
    torch.testing.assert_close(got.k_bar, torch.tensor(np.median(k_all.numpy(), -1)))
    torch.testing.assert_close(got.ratio, torch.tensor(np.median((k_all / n_all).numpy(), -1)))
    torch.testing.assert_close(got.n_median, torch.full((H,), float(np.median(
        np.repeat(lengths, lengths))), dtype=torch.float64))


def test_classify_ratio_boundaries():
    r = torch.tensor([1.0, 0.5000001, 0.5, 0.2, 0.125, 0.1, 1 / 32 + 1e-9, 1 / 32, 0.0],
                     dtype=torch.float64)
    assert [CLASS_NAMES[int(c)] for c in classify_ratio(r)] == [
        "I", "I", "II", "II", "III", "III", "III", "IV", "IV"]


def test_head_classes_paper_rule_equal_lengths():
    # N = 64: head 0 uniform (k = 58 > 32: I), head 1 one-hot (k = 1 ≤ 2: IV),
    # head 2 mass spread on 4 keys (k = 4, 2 < 4 ≤ 8: III), head 3 on 16 keys (k = 15, II).
    N = 64
    w = torch.zeros(1, 4, N, N)
    w[0, 0] = 1.0 / N
    w[0, 1, :, 0] = 1.0
    w[0, 2, :, :4] = 0.25
    w[0, 3, :, :16] = 1.0 / 16
    hc = head_classes(w)
    assert hc.k_bar.tolist() == [58.0, 1.0, 4.0, 15.0]
    assert hc.names == ["I", "IV", "III", "II"]
    assert hc.classes.tolist() == [0, 3, 2, 1]


def test_median_is_the_usual_one():
    assert float(median(torch.tensor([1.0, 2.0, 3.0, 10.0]))) == 2.5


@given(st.integers(1, 12), st.integers(1, 5), st.floats(0.05, 1.0), st.integers(0, 10_000))
def test_matches_naive_reference(n, rows, threshold, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.softmax(4 * torch.randn(rows, n, generator=g, dtype=torch.float64), -1)
    got = metastable_k(w, threshold=threshold).tolist()
    assert got == [naive_k(r, threshold) for r in w.tolist()]


@given(st.integers(2, 10), st.integers(0, 10_000))
def test_k_monotone_in_threshold_and_permutation_invariant(n, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.softmax(3 * torch.randn(4, n, generator=g), -1)
    k5, k9 = metastable_k(w, threshold=0.5), metastable_k(w, threshold=0.9)
    assert bool((k5 <= k9).all()) and bool((k9 >= 1).all()) and bool((k9 <= n).all())
    perm = torch.randperm(n, generator=g)
    assert torch.equal(metastable_k(w[:, perm]), k9)


@pytest.mark.parametrize("bad, err, match", [
    ([[0.5, 0.5]], TypeError, "weights must be a torch.Tensor"),
    (torch.tensor([0.5, 0.5]), ValueError, r"weights must have shape \(\.\.\., L, N\)"),
    (torch.tensor([[0.5, -0.1]]), ValueError, "weights must be non-negative"),
    (torch.tensor([[float("nan"), 1.0]]), ValueError, "weights must be finite"),
    (torch.tensor([[1, 0]]), TypeError, "weights must be a floating-point tensor"),
    (torch.zeros(1, 2), ValueError, "positive mass"),
])
def test_bad_weights(bad, err, match):
    with pytest.raises(err, match=match):
        metastable_k(bad)


def test_bad_threshold_and_masks():
    w = torch.tensor([[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 1.5"):
        metastable_k(w, threshold=1.5)
    with pytest.raises(TypeError, match="threshold must be a float"):
        metastable_k(w, threshold="0.9")
    with pytest.raises(TypeError, match="mask must be a bool"):
        metastable_k(w, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="mask must have shape"):
        metastable_k(w, torch.tensor([True, False, False]))
    with pytest.raises(TypeError, match="query_mask must be a bool"):
        metastable_k(w, query_mask=torch.tensor([1]))
    with pytest.raises(ValueError, match="positive mass"):
        metastable_k(torch.tensor([[0.0, 1.0]]), torch.tensor([False, True]))


def test_per_head_query_mask_that_differs_between_heads_is_a_clear_error():
    w = torch.softmax(torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)), -1)
    same = torch.zeros(2, 3, 4, dtype=torch.bool)
    same[:, :, 0] = True  # the same query masked in every head: fine
    assert head_classes(w, query_mask=same).n_queries == 6
    differ = same.clone()
    differ[0, 1, 2] = True  # one extra query in head 1 only (used to be a reshape RuntimeError)
    with pytest.raises(ValueError, match=r"query_mask must mask the same queries in every head.*"
                                         r"\[6, 5, 6\]"):
        head_classes(w, query_mask=differ)
