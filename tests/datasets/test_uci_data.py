"""load_uci on the real files: the 21 fixed-split sets (bundled) and raw weka / mlbench / sklearn."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hopfield.datasets import data_dir
from hopfield.datasets.uci import MLBENCH_TARGETS, UCI_FD_NAMES, list_uci, load_uci

# (n samples, n features, n classes) of the preprocessed Fernández-Delgado files.
FD_SHAPES = {
    "blood_transfusion": (748, 4, 2), "breast_cancer": (286, 9, 2),
    "congressional_voting": (435, 16, 2), "conn_bench_sonar_mines_rocks": (208, 60, 2),
    "credit_approval": (690, 15, 2), "cylinder_bands": (512, 35, 2), "ecoli": (336, 7, 8),
    "energy_y2": (768, 8, 3), "glass_identification": (214, 9, 6),
    "haberman_survival": (306, 3, 2), "heart_cleveland": (303, 13, 5),
    "horse_colic": (368, 25, 2), "led_display": (1000, 7, 10), "mammographic": (961, 5, 2),
    "monks_2": (601, 6, 2), "primary_tumor": (330, 17, 15),
    "statlog_australian_credit": (690, 14, 2), "statlog_german_credit": (1000, 24, 2),
    "statlog_heart": (270, 13, 2), "vertebral_column2": (310, 6, 2),
    "vertebral_column3": (310, 6, 3),
}  # fmt: skip


def test_names_match_table():
    assert set(UCI_FD_NAMES) == set(FD_SHAPES) and len(UCI_FD_NAMES) == 21


@pytest.mark.parametrize("name", UCI_FD_NAMES)
def test_fixed_split_sets(name):
    ds = load_uci(name)
    n, d, c = FD_SHAPES[name]
    assert ds.X.shape == (n, d) and ds.X.dtype == np.float64 and np.isfinite(ds.X).all()
    assert ds.y.shape == (n,) and ds.y.dtype == np.int64
    assert ds.n_classes == c and set(np.unique(ds.y)) == set(range(c))
    assert len(ds.splits) == 4
    for tr, va, te in ds.splits:
        # disjoint and covering every sample
        assert len(np.intersect1d(tr, va)) == len(np.intersect1d(tr, te)) == 0
        assert len(np.intersect1d(va, te)) == 0
        assert len(tr) + len(va) + len(te) == n
        assert len(va) > 0 and len(tr) > 0
    # the test set has the same size in every split: ~25 % (UCI's own test set for monks_2, horse_colic)
    sizes = {len(te) for _, _, te in ds.splits}
    assert len(sizes) == 1
    frac = sizes.pop() / n
    assert 0.18 < frac < 0.28 or (name == "monks_2" and frac > 0.7)


@pytest.mark.parametrize(
    ("name", "sizes"),
    [("statlog_heart", (165, 38, 67)), ("monks_2", (139, 30, 432)), ("ecoli", (198, 54, 84)),
     ("led_display", (594, 156, 250))],
)
def test_first_split_sizes(name, sizes):
    tr, va, te = load_uci(name).splits[0]
    assert (len(tr), len(va), len(te)) == sizes


def test_split_accessor():
    ds = load_uci("statlog_heart")
    Xtr, ytr, Xva, _yva, _Xte, yte = ds.split(2)
    tr, va, te = ds.splits[2]
    np.testing.assert_array_equal(Xva, ds.X[va])
    np.testing.assert_array_equal(yte, ds.y[te])
    assert len(Xtr) == len(ytr) == len(tr)
    with pytest.raises(ValueError, match=r"j must be in \[0, 4\), got 4"):
        ds.split(4)


def test_data_dir_copy_is_preferred(tmp_path):
    from hopfield.datasets._paths import BUNDLED_DIR

    dst = tmp_path / "uci-fd" / "ecoli"
    shutil.copytree(BUNDLED_DIR / "uci-fd" / "ecoli", dst)
    lines = (dst / "labels_py.dat").read_text().splitlines()
    (dst / "labels_py.dat").write_text("\n".join(["7"] * len(lines)) + "\n")
    ds = load_uci("ecoli", data_dir=tmp_path)
    assert ds.classes == ["7"]


def test_inconsistent_files_raise(tmp_path):
    from hopfield.datasets._paths import BUNDLED_DIR

    dst = tmp_path / "uci-fd" / "ecoli"
    shutil.copytree(BUNDLED_DIR / "uci-fd" / "ecoli", dst)
    lines = (dst / "labels_py.dat").read_text().splitlines()
    (dst / "labels_py.dat").write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(ValueError, match="inconsistent"):
        load_uci("ecoli", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_sklearn_sets(name):
    ds = load_uci(f"sklearn:{name}")
    assert ds.X.ndim == 2 and len(ds.X) == len(ds.y) and ds.splits == []
    assert len(ds.classes) == ds.n_classes and len(ds.feature_names) == ds.X.shape[1]


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="name must be one of the fixed-split UCI sets"):
        load_uci("not_a_dataset")
    with pytest.raises(ValueError, match="name must start with one of"):
        load_uci("foo:bar")
    with pytest.raises(ValueError, match="sklearn:iris"):
        load_uci("sklearn:mnist")
    with pytest.raises(ValueError, match="mlbench classification sets"):
        load_uci("mlbench:BostonHousing")
    with pytest.raises(TypeError, match="name must be a str, got int"):
        load_uci(3)
    with pytest.raises(ValueError, match="source must be one of"):
        list_uci("kaggle")


def test_missing_raw_files_say_how_to_obtain(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"weka:iris.*apt-get download weka"):
        load_uci("weka:iris", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"mlbench:Sonar.*apt-get download r-cran-mlbench"):
        load_uci("mlbench:Sonar", data_dir=tmp_path)
    assert list_uci(data_dir=tmp_path) == list(UCI_FD_NAMES) + [
        "sklearn:iris", "sklearn:wine", "sklearn:breast_cancer", "sklearn:digits"]


# ------------------------------------------------------------------ raw Debian files
WEKA = data_dir() / "weka"
MLBENCH = data_dir() / "mlbench"
need_weka = pytest.mark.skipif(
    not any(WEKA.rglob("iris.arff")) if WEKA.is_dir() else True,
    reason=f"weka ARFF files not in {WEKA} (run scripts/fetch_data.sh)")
need_mlbench = pytest.mark.skipif(
    not any(MLBENCH.rglob("Sonar.rda")) if MLBENCH.is_dir() else True,
    reason=f"mlbench .rda files not in {MLBENCH} (run scripts/fetch_data.sh)")

# name -> (n samples, n classes) of the original UCI files
WEKA_SETS = {"iris": (150, 3), "glass": (214, 6), "ionosphere": (351, 2), "diabetes": (768, 2),
             "credit-g": (1000, 2), "soybean": (683, 19), "vote": (435, 2),
             "breast-cancer": (286, 2), "segment-test": (810, 7)}
MLBENCH_SETS = {"Sonar": (208, 2), "Vehicle": (846, 4), "Vowel": (990, 11), "Zoo": (101, 7),
                "BreastCancer": (699, 2), "Ionosphere": (351, 2), "Glass": (214, 6),
                "PimaIndiansDiabetes": (768, 2), "HouseVotes84": (435, 2)}


@need_weka
@pytest.mark.parametrize("name", sorted(WEKA_SETS))
def test_weka_arff(name):
    ds = load_uci(f"weka:{name}")
    n, c = WEKA_SETS[name]
    assert ds.X.shape[0] == n and ds.n_classes == c and np.isfinite(ds.X).all()
    assert len(ds.feature_names) == ds.X.shape[1] and ds.source == "weka"


@need_weka
def test_weka_nominal_one_hot_and_regression_rejected():
    vote = load_uci("weka:vote")  # 16 nominal y/n attributes with missing values
    assert set(np.unique(vote.X)) == {0.0, 1.0} and vote.X.shape[1] == 32
    assert (vote.X.reshape(len(vote.X), 16, 2).sum(-1) <= 1).all()  # missing -> all zeros
    with pytest.raises(ValueError, match="classification"):
        load_uci("weka:cpu")
    assert "weka:cpu" not in list_uci("weka") and "weka:iris" in list_uci("weka")


@need_weka
def test_weka_iris_matches_sklearn_iris():
    a, b = load_uci("weka:iris"), load_uci("sklearn:iris")
    np.testing.assert_allclose(np.sort(a.X, 0), np.sort(b.X, 0), atol=0.11)  # 2 known typos
    np.testing.assert_array_equal(np.bincount(a.y), np.bincount(b.y))


@need_mlbench
@pytest.mark.parametrize("name", sorted(MLBENCH_SETS))
def test_mlbench_rda(name):
    ds = load_uci(f"mlbench:{name}")
    n, c = MLBENCH_SETS[name]
    # BreastCancer has 16 samples with a missing feature (imputed, kept); labels are complete
    assert ds.X.shape[0] == n and ds.n_classes == c and np.isfinite(ds.X).all()
    assert ds.source == "mlbench" and f"mlbench:{name}" in list_uci("mlbench")


@need_mlbench
def test_mlbench_case_insensitive_and_sonar_matches_uci_fd():
    sonar = load_uci("mlbench:sonar")
    assert sonar.name == "mlbench:Sonar" and sonar.X.shape == (208, 60)
    fd = load_uci("conn_bench_sonar_mines_rocks")
    assert sorted(np.bincount(sonar.y)) == sorted(np.bincount(fd.y))  # 111 mines, 97 rocks


def test_mlbench_table_has_no_regression_sets():
    assert not {"BostonHousing", "BostonHousing2", "Ozone", "Servo"} & set(MLBENCH_TARGETS)
