"""R lazy-load reader (on a database built here) and the mid-size tabular sets (when present)."""

from __future__ import annotations

import gzip
import json
import lzma
import struct
import zlib

import numpy as np
import pandas as pd
import pytest

from hopfield.datasets._paths import data_dir
from hopfield.datasets._rdata_lazy import lazyload_names, read_lazyload
from hopfield.datasets.tabular import TABULAR_SETS, load_tabular

rdata = pytest.importorskip("rdata")


def _serialise(obj, tmp_path, name) -> bytes:
    path = tmp_path / f"{name}.rds"
    rdata.write_rds(str(path), obj, compression=None)
    return path.read_bytes()


def _lazyload_db(tmp_path, objects: dict, kind: str):
    """Write ``objects`` as an R lazy-load database: zlib entries (kind 'zlib', as ggplot2) or
    'Z' + raw LZMA2 entries (kind 'xz', as modeldata)."""
    blobs, variables, off = [], {}, 0
    for name, obj in objects.items():
        raw = _serialise(obj, tmp_path, name)
        if kind == "zlib":
            body = zlib.compress(raw)
        else:
            body = b"Z" + lzma.compress(raw, format=lzma.FORMAT_RAW,
                                        filters=[{"id": lzma.FILTER_LZMA2, "preset": 9}])
        blob = struct.pack(">I", len(raw)) + body
        variables[name] = np.array([off, len(blob)], dtype=np.int32)
        blobs.append(blob)
        off += len(blob)
    base = tmp_path / "Rdata"
    (tmp_path / "Rdata.rdb").write_bytes(b"".join(blobs))
    index = _serialise({"variables": variables, "compressed": True}, tmp_path, "index")
    (tmp_path / "Rdata.rdx").write_bytes(gzip.compress(index))
    return base


@pytest.mark.parametrize("kind", ["zlib", "xz"])
def test_lazyload_roundtrip(tmp_path, kind):
    a = pd.DataFrame({"x": [1.5, np.nan, 3.0], "f": pd.Categorical(["u", "v", "u"])})
    b = pd.DataFrame({"y": [10.0, 20.0]})
    base = _lazyload_db(tmp_path, {"first": a, "second": b}, kind)
    assert lazyload_names(base) == ["first", "second"]
    got = read_lazyload(base, "first")
    assert list(got.columns) == ["x", "f"]
    np.testing.assert_array_equal(got["x"].to_numpy(), a["x"].to_numpy())
    assert list(got["f"].astype(str)) == ["u", "v", "u"]
    assert read_lazyload(base, "second")["y"].tolist() == [10.0, 20.0]
    with pytest.raises(KeyError, match="not in"):
        read_lazyload(base, "third")


def test_lazyload_missing_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="lazy-load index"):
        lazyload_names(tmp_path / "Rdata")


def test_unknown_name():
    with pytest.raises(ValueError, match="name must be one of"):
        load_tabular("iris")


def test_missing_data_dir_explains_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get download r-cran-modeldata"):
        load_tabular("churn", data_dir=tmp_path)


def _have(name: str) -> bool:
    pkg = TABULAR_SETS[name][0]
    return (data_dir() / pkg).is_dir()


@pytest.mark.parametrize("name", ["satellite", "churn", "credit", "ames"])
def test_real_sets_and_fixed_split(name, tmp_path):
    if not _have(name):
        pytest.skip(f"{TABULAR_SETS[name][0]} data not fetched (scripts/fetch_data.sh)")
    root = data_dir()
    # read the packages from the real data dir, write the split into a scratch copy of it
    for pkg in ("mlbench", "modeldata", "ggplot2"):
        if (root / pkg).exists():
            (tmp_path / pkg).symlink_to(root / pkg)
    d = load_tabular(name, data_dir=tmp_path)
    n = len(d.y)
    assert 2000 <= n <= 60000
    parts = np.concatenate([d.train, d.val, d.test])
    assert len(np.unique(parts)) == n  # disjoint and complete
    assert abs(len(d.test) / n - 0.2) < 0.01 and abs(len(d.val) / n - 0.1) < 0.01
    split_file = tmp_path / "tabular-splits" / f"{name}.json"
    saved = json.loads(split_file.read_text())
    assert saved["train"] == d.train.tolist()
    again = load_tabular(name, data_dir=tmp_path)  # read back, identical
    np.testing.assert_array_equal(again.test, d.test)
    saved["n"] = n + 1
    split_file.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="move that file away"):
        load_tabular(name, data_dir=tmp_path)
    assert json.loads(split_file.read_text())["n"] == n + 1  # not overwritten
    Xn = d.numeric()
    assert Xn.shape[0] == n and Xn.dtype == np.float64
    if d.task == "classification":
        assert d.classes and d.y.max() == len(d.classes) - 1
    else:
        assert np.isfinite(d.y).all()
