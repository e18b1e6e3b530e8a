"""Bad input to the Hopfield layers: errors name the argument, the expectation and the finding."""

import pytest
import torch

from hopfield import Hopfield

X = torch.randn(2, 3, 8)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"input_size": 0}, ValueError, "input_size must be >= 1, got 0"),
    ({"input_size": 8.0}, TypeError, "input_size must be an int, got float"),
    ({"input_size": 10, "num_heads": 3}, ValueError, "head_size must be given"),
    ({"input_size": 8, "beta": 0.0}, ValueError, "beta must be > 0"),
    ({"input_size": 8, "beta": -1.0}, ValueError, "beta must be > 0"),
    ({"input_size": 8, "beta": float("nan")}, ValueError, "beta must be > 0 and finite"),
    ({"input_size": 8, "num_heads": 2, "beta": torch.tensor([1.0, -1.0])}, ValueError,
     "beta must be > 0"),
    ({"input_size": 8, "num_heads": 2, "beta": torch.ones(3)}, ValueError,
     r"beta must be a float or a tensor of shape \(2,\)"),
    ({"input_size": 8, "beta": "big"}, TypeError, "beta must be a float or a tensor, got str"),
    ({"input_size": 8, "separation": "maxout"}, ValueError,
     r"separation must be one of \['entmax', .*'softmax'.*\], got 'maxout'"),
    ({"input_size": 8, "max_steps": -1}, ValueError, "max_steps must be >= 0"),
    ({"input_size": 8, "tol": 0.0}, ValueError, "tol must be a float > 0"),
    ({"input_size": 8, "dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
    ({"input_size": 8, "output_size": 0}, ValueError, "output_size must be >= 1, got 0"),
    ({"input_size": 8, "stored_pattern_size": 0}, ValueError,
     "stored_pattern_size must be >= 1, got 0"),
    ({"input_size": 8, "pattern_projection_size": 0}, ValueError,
     "pattern_projection_size must be >= 1, got 0"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Hopfield(**kwargs)


def test_input_errors():
    layer = Hopfield(8, num_heads=2)
    with pytest.raises(TypeError, match="input must be a tensor or a tuple .*, got list of len"):
        layer([[1.0] * 8])
    with pytest.raises(ValueError, match=r"input must have shape \(B, T, D\), got \(3, 8\)"):
        layer(torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"input must have feature size 8, got shape \(2, 3, 7\)"):
        layer(torch.randn(2, 3, 7))
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        layer(torch.ones(2, 3, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="input must have the layer's dtype torch.float32, got "
                                        "torch.float64"):
        layer(X.double())
    bad = X.clone()
    bad[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="input must be finite, got 1 NaN"):
        layer(bad)
    with pytest.raises(ValueError, match="state must be finite"):
        layer((X, bad, X))
    with pytest.raises(TypeError, match="tuple .* of 3 tensors, got tuple of length 2"):
        layer((X, X))
    with pytest.raises(ValueError, match="share the batch size"):
        layer((X, torch.randn(3, 3, 8), X))
    with pytest.raises(ValueError, match=r"projection must hold one pattern per stored pattern"):
        layer((X, X, torch.randn(2, 4, 8)))
    empty = X[:, :0]
    for return_info in (False, True):  # used to give the bias (fast) or "math domain error"
        with pytest.raises(ValueError, match=r"stored must hold at least one pattern .*"
                                             r"got shape \(2, 0, 8\)"):
            layer((empty, X, empty), return_info=return_info)
    het = Hopfield(8, stored_pattern_size=5)
    with pytest.raises(ValueError, match="must be a tuple"):
        het(X)
    with pytest.raises(ValueError, match=r"stored must have feature size 5"):
        het((X, X, X))


def test_mask_errors():
    layer = Hopfield(8, num_heads=2)
    with pytest.raises(TypeError, match="mask must be a bool tensor .*got torch.float32"):
        layer(X, mask=torch.zeros(2, 3))
    with pytest.raises(TypeError, match="mask must be a bool tensor .*got list"):
        layer(X, mask=[[False] * 3] * 2)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N\) = \(2, 3\), got \(2, 4\)"):
        layer(X, mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one stored pattern"):
        layer(X, mask=torch.tensor([[True] * 3, [False] * 3]))
    with pytest.raises(TypeError, match="association_mask must be a bool tensor"):
        layer(X, association_mask=torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"association_mask must have shape \(3, 3\), .* or 4-D"):
        layer(X, association_mask=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"association_mask must have shape .* got \(2, 3, 3, 3\)"):
        layer(X, association_mask=torch.zeros(2, 3, 3, 3, dtype=torch.bool))
    # valid 4-D masks: per batch and per head
    am = torch.zeros(2, 2, 3, 3, dtype=torch.bool)
    am[1, 0, :, 0] = True
    _, info = layer(X, association_mask=am, return_info=True)
    assert bool((info.weights[1, 0, :, 0] == 0).all()) and bool((info.weights[0] > 0).all())
