"""`hopfield reproduce ood` in smoke mode: files, report, cache, bad arguments."""

import json

import numpy as np
import pytest

from hopfield.reproduce import PARTS, get_part
from hopfield.reproduce import ood as R


def test_fpr_at_tpr_and_auroc():
    s_in = np.arange(100.0)  # 95 % of ID rows are >= 5
    s_out = np.array([0.0, 4.0, 5.0, 50.0])
    assert R.fpr_at_tpr(s_in, s_out) == pytest.approx(0.5)
    assert R._auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def test_aux_patches_are_digit_like():
    p = R._aux_patches(20, seed=0)
    assert p.shape == (20, 64) and p.min() >= 0 and p.max() <= 16
    np.testing.assert_array_equal(p, R._aux_patches(20, seed=0))


def test_smoke_run_writes_files_and_caches(tmp_path):
    assert PARTS["ood"].module == "hopfield.reproduce.ood" and get_part("ood") is R
    md = R.run(tmp_path, mode="smoke", seed=0)
    out = tmp_path / "ood"
    for f in ("results.csv", "summary.csv", "boosting.csv", "ood.json", "hist.png", "roc.png"):
        assert (out / f).is_file(), f
    data = json.loads((out / "ood.json").read_text())
    assert set(data["summary"]) == {"digits_pixels", "digits_net"}
    for m in ("hopfield", "msp", "energy", "mahalanobis", "knn", "iforest", "lof"):
        auc = data["summary"]["digits_pixels"][m]["auroc"][0]
        assert 50 <= auc <= 100, (m, auc)
    assert data["summary"]["digits_pixels"]["hopfield"]["auroc"][0] > 95
    assert "AUROC" in md and "Hopfield Boosting" in md
    cached = sorted((out / "folds" / "smoke-seed0").glob("*.json"))
    assert len(cached) == 3
    stamp = [p.stat().st_mtime_ns for p in cached]
    assert R.run(tmp_path, mode="smoke", seed=0).count("digits") >= 2
    assert [p.stat().st_mtime_ns for p in cached] == stamp  # reused, not recomputed


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        R.run(tmp_path, mode="fast")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        R.run(tmp_path, mode="smoke", seed=-1)
    with pytest.raises(ValueError, match="sets must be a non-empty subset"):
        R.run(tmp_path, mode="smoke", sets=("cifar",))
    assert not (tmp_path / "ood").exists()


def test_missing_letter_data_fails_early(tmp_path):
    with pytest.raises(FileNotFoundError, match="LetterRecognition"):
        R.run(tmp_path / "o", mode="smoke", sets=("letters_raw",), data_dir=tmp_path / "empty")
    assert not (tmp_path / "o").exists()
