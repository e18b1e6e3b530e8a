"""``hopfield.set_validation`` / ``hopfield.validation``: the switch for data-dependent checks."""

from __future__ import annotations

import pytest
import torch

import hopfield
import hopfield.functional as HF
from hopfield._validation import check_beta, check_finite


def test_default_on_and_context_manager_restores() -> None:
    assert hopfield.validation_enabled()
    with hopfield.validation(False):
        assert not hopfield.validation_enabled()
        with hopfield.validation(True):
            assert hopfield.validation_enabled()
        assert not hopfield.validation_enabled()
    assert hopfield.validation_enabled()


def test_context_manager_restores_after_an_exception() -> None:
    with pytest.raises(RuntimeError), hopfield.validation(False):
        raise RuntimeError("boom")
    assert hopfield.validation_enabled()


def test_set_validation_rejects_non_bool() -> None:
    with pytest.raises(TypeError, match="enabled must be a bool"):
        hopfield.set_validation(0)
    assert hopfield.validation_enabled()


def test_data_checks_skipped_only_when_off() -> None:
    bad = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="x must be finite"):
        check_finite(bad, "x")
    with pytest.raises(ValueError, match="beta must be > 0"):
        check_beta(torch.tensor([-1.0]))
    with hopfield.validation(False):
        check_finite(bad, "x")              # skipped: the caller's responsibility
        check_beta(torch.tensor([-1.0]))
        with pytest.raises(TypeError, match="beta must be a float"):  # type checks still run
            check_beta("one")


def test_results_do_not_depend_on_the_switch() -> None:
    g = torch.Generator().manual_seed(0)
    state, patterns = torch.randn(2, 3, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    ref = HF.update(state, patterns, 0.5)
    with hopfield.validation(False):
        torch.testing.assert_close(HF.update(state, patterns, 0.5), ref, rtol=0, atol=0)
