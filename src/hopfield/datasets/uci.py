"""Small UCI classification datasets: the 21 fixed-split sets and raw offline UCI files.

Sources (all readable without a network connection):

* ``"<name>"`` — one of the 21 preprocessed sets of Fernández-Delgado et al. (JMLR 2014) with their
  4 fixed train/validation/test splits (redistributed by ml-jku/hopular, MIT). Read from
  ``<data_dir>/uci-fd/<name>/`` when present, else from the copy bundled with the package.
* ``"weka:<file>"`` — ARFF files of the Debian ``weka`` package
  (``apt-get download weka && dpkg -x weka_*.deb <data_dir>/weka``), read with ``liac-arff``.
* ``"mlbench:<Name>"`` — R data of the Debian ``r-cran-mlbench`` package
  (``apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb <data_dir>/mlbench``), read
  with ``rdata``.
* ``"sklearn:<name>"`` — scikit-learn's bundled iris, wine, breast_cancer, digits.

Raw sets are encoded to a numeric matrix: numeric columns are kept (missing values replaced by the
column median), ordered factors become their integer codes, unordered nominal columns are one-hot
encoded (a missing value is the all-zero row). They have no fixed splits (``splits == []``).

Shapes: n samples, d features. ``X`` (n, d) float64, ``y`` (n,) int64 in ``0..n_classes-1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._paths import BUNDLED_DIR
from ._paths import data_dir as _data_dir_fn

__all__ = ["UCI_FD_NAMES", "UCIDataset", "list_uci", "load_uci"]

UCI_FD_NAMES: tuple[str, ...] = (
    "blood_transfusion", "breast_cancer", "congressional_voting", "conn_bench_sonar_mines_rocks",
    "credit_approval", "cylinder_bands", "ecoli", "energy_y2", "glass_identification",
    "haberman_survival", "heart_cleveland", "horse_colic", "led_display", "mammographic",
    "monks_2", "primary_tumor", "statlog_australian_credit", "statlog_german_credit",
    "statlog_heart", "vertebral_column2", "vertebral_column3",
)  # fmt: skip

SKLEARN_NAMES = ("iris", "wine", "breast_cancer", "digits")

# mlbench classification sets -> (target column, columns to drop). Regression sets are left out.
MLBENCH_TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "BreastCancer": ("Class", ("Id",)), "DNA": ("Class", ()), "Glass": ("Type", ()),
    "HouseVotes84": ("Class", ()), "Ionosphere": ("Class", ()),
    "LetterRecognition": ("lettr", ()), "PimaIndiansDiabetes": ("diabetes", ()),
    "PimaIndiansDiabetes2": ("diabetes", ()), "Satellite": ("classes", ()),
    "Shuttle": ("Class", ()), "Sonar": ("Class", ()), "Soybean": ("Class", ()),
    "Vehicle": ("Class", ()), "Vowel": ("Class", ()), "Zoo": ("type", ()),
}  # fmt: skip

_WEKA_HOW = "apt-get download weka && dpkg -x weka_*.deb {dir}"
_MLBENCH_HOW = "apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb {dir}"


@dataclass
class UCIDataset:
    """A classification dataset.

    ``splits`` holds, for the fixed-split sets, 4 ``(train_idx, val_idx, test_idx)`` triples of
    disjoint int64 index arrays (empty for raw sets). ``classes`` are the original label values.
    """

    name: str
    X: np.ndarray  # (n, d) float64
    y: np.ndarray  # (n,) int64
    splits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    source: str = "uci-fd"
    feature_names: list[str] | None = None
    classes: list[str] | None = None

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1 if self.y.size else 0

    def split(self, j: int) -> tuple[np.ndarray, ...]:
        """``(X_train, y_train, X_val, y_val, X_test, y_test)`` of fixed split ``j``."""
        if not self.splits:
            raise ValueError(f"dataset {self.name!r} has no fixed splits")
        if not 0 <= j < len(self.splits):
            raise ValueError(f"j must be in [0, {len(self.splits)}), got {j}")
        tr, va, te = self.splits[j]
        return self.X[tr], self.y[tr], self.X[va], self.y[va], self.X[te], self.y[te]


# ----------------------------------------------------------------------------- fixed splits


def _fd_dir(name: str, root: Path) -> Path:
    local = root / "uci-fd" / name
    return local if (local / "labels_py.dat").is_file() else BUNDLED_DIR / "uci-fd" / name


def _read_dat(path: Path, dtype) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(
            f"UCI dataset file {path} is missing; reinstall hopfield (the 21 fixed-split sets are "
            f"bundled) or put the Fernández-Delgado/Hopular folder under <data_dir>/uci-fd/"
        )
    return np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)


def _load_fd(name: str, root: Path) -> UCIDataset:
    d = _fd_dir(name, root)
    X = _read_dat(d / f"{name}_py.dat", np.float64)  # (n, d)
    y = _read_dat(d / "labels_py.dat", np.int64)[:, 0]  # (n,)
    test = _read_dat(d / "folds_py.dat", np.int64).astype(bool)  # (n, 4)
    val = _read_dat(d / "validation_folds_py.dat", np.int64).astype(bool)  # (n, 4)
    n = len(y)
    if not (len(X) == len(test) == len(val) == n) or test.shape[1] != val.shape[1]:
        raise ValueError(
            f"UCI dataset {name!r} in {d} is inconsistent: {len(X)} feature rows, {n} labels, "
            f"{len(test)} fold rows, {len(val)} validation rows"
        )
    if (test & val).any():
        raise ValueError(f"UCI dataset {name!r}: validation and test samples overlap in {d}")
    # re-code labels to 0..C-1 (they already are for all 21 sets; keep the original values)
    classes, y = np.unique(y, return_inverse=True)
    splits = []
    for j in range(test.shape[1]):
        tr = np.flatnonzero(~test[:, j] & ~val[:, j])
        splits.append((tr, np.flatnonzero(val[:, j]), np.flatnonzero(test[:, j])))
    return UCIDataset(
        name, X, y.astype(np.int64), splits, "uci-fd", None, [str(c) for c in classes]
    )


# ----------------------------------------------------------------------------- raw encoders


def _encode_columns(columns: list[tuple[str, str, np.ndarray, list | None]]):
    """Columns ``(name, kind, values, categories)`` with kind numeric|ordered|nominal -> (X, names).

    numeric: float values, NaN = missing (median-imputed); ordered: float codes (NaN = missing,
    median-imputed); nominal: integer codes with -1 = missing, one-hot encoded.
    """
    blocks, names = [], []
    for name, kind, values, cats in columns:
        if kind in ("numeric", "ordered"):
            v = np.asarray(values, dtype=np.float64)
            miss = ~np.isfinite(v)
            if miss.all():
                continue
            if miss.any():
                v = np.where(miss, np.median(v[~miss]), v)
            blocks.append(v[:, None])
            names.append(name)
        else:
            codes = np.asarray(values, dtype=np.int64)
            k = len(cats)
            onehot = np.zeros((len(codes), k))
            ok = codes >= 0
            onehot[np.flatnonzero(ok), codes[ok]] = 1.0
            keep = onehot.any(axis=0)  # drop categories never seen
            blocks.append(onehot[:, keep])
            names += [f"{name}={c}" for c, kk in zip(cats, keep) if kk]
    n = len(columns[0][2]) if columns else 0
    X = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))
    return X, names


def _encode_target(codes: np.ndarray, cats: list, name: str):
    codes = np.asarray(codes, dtype=np.int64)
    keep = codes >= 0  # drop samples without a label
    present = np.unique(codes[keep])
    remap = np.full(len(cats), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return keep, remap[codes[keep]], [str(cats[i]) for i in present]


def _find(root: Path, pattern: str) -> Path | None:
    if not root.is_dir():
        return None
    hits = sorted(root.rglob(pattern))
    return hits[0] if hits else None


def _arff_is_classification(path: Path) -> bool:
    """Header scan: only numeric/nominal attributes and a nominal last (class) attribute."""
    types = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            low = line.strip().lower()
            if low.startswith("@data"):
                break
            if low.startswith("@attribute"):
                types.append("nominal" if low.rstrip().endswith("}") else low.split()[-1])
    ok = {"nominal", "numeric", "real", "integer"}
    return bool(types) and types[-1] == "nominal" and all(t in ok for t in types)


def _load_weka(stem: str, root: Path) -> UCIDataset:
    try:
        import arff
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError("reading weka ARFF files needs liac-arff: pip install liac-arff") from err
    wdir = root / "weka"
    path = _find(wdir, f"{stem}.arff")
    if path is None:
        raise FileNotFoundError(
            f"UCI dataset 'weka:{stem}' not found under {wdir}; obtain the weka ARFF files with "
            f"`{_WEKA_HOW.format(dir=wdir)}` (or set HOPFIELD_DATA / --data-dir)"
        )
    with open(path, encoding="utf-8", errors="replace") as fh:
        data = arff.load(fh)
    attrs = data["attributes"]
    rows = data["data"]
    tname, ttype = attrs[-1]
    if not isinstance(ttype, list):
        raise ValueError(  # noqa: TRY004 - an unsupported data file, not a wrong argument type
            f"weka:{stem} has a {ttype} class attribute {tname!r}; load_uci reads only "
            f"classification sets (nominal class attribute)"
        )
    cols = []
    for j, (aname, atype) in enumerate(attrs[:-1]):
        vals = [r[j] for r in rows]
        if isinstance(atype, list):
            idx = {c: i for i, c in enumerate(atype)}
            cols.append((aname, "nominal", [idx.get(v, -1) for v in vals], list(atype)))
        elif atype.upper() in ("NUMERIC", "REAL", "INTEGER"):
            cols.append((aname, "numeric", [np.nan if v is None else v for v in vals], None))
        else:
            raise ValueError(f"weka:{stem}: attribute {aname!r} of type {atype} is not supported")
    tidx = {c: i for i, c in enumerate(ttype)}
    keep, y, classes = _encode_target([tidx.get(r[-1], -1) for r in rows], ttype, tname)
    X, names = _encode_columns(cols)
    return UCIDataset(f"weka:{stem}", X[keep], y, [], "weka", names, classes)


def _load_mlbench(name: str, root: Path) -> UCIDataset:
    canon = {k.lower(): k for k in MLBENCH_TARGETS}.get(name.lower())
    if canon is None:
        raise ValueError(
            f"name must be one of the mlbench classification sets "
            f"{sorted('mlbench:' + k for k in MLBENCH_TARGETS)}, got 'mlbench:{name}'"
        )
    try:
        import rdata
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError("reading mlbench .rda files needs rdata: pip install rdata") from err
    mdir = root / "mlbench"
    path = _find(mdir, f"{canon}.rda")
    if path is None:
        raise FileNotFoundError(
            f"UCI dataset 'mlbench:{canon}' not found under {mdir}; obtain the mlbench R data with "
            f"`{_MLBENCH_HOW.format(dir=mdir)}` (or set HOPFIELD_DATA / --data-dir)"
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = rdata.read_rda(str(path))[canon]
    target, drop = MLBENCH_TARGETS[canon]
    cols = []
    for col in df.columns:
        if col == target or col in drop:
            continue
        s = df[col]
        if str(s.dtype) == "category":
            codes = s.cat.codes.to_numpy()
            if s.cat.ordered:
                cols.append((str(col), "ordered", np.where(codes < 0, np.nan, codes), None))
            else:
                cols.append((str(col), "nominal", codes, [str(c) for c in s.cat.categories]))
        else:
            v = s.astype("float64").to_numpy(na_value=np.nan)
            cols.append((str(col), "numeric", v, None))
    t = df[target].astype("category")
    keep, y, classes = _encode_target(
        t.cat.codes.to_numpy(), [str(c) for c in t.cat.categories], target
    )
    X, names = _encode_columns(cols)
    return UCIDataset(f"mlbench:{canon}", X[keep], y, [], "mlbench", names, classes)


def _load_sklearn(name: str) -> UCIDataset:
    from sklearn import datasets as skd

    if name not in SKLEARN_NAMES:
        raise ValueError(
            f"name must be one of {[f'sklearn:{n}' for n in SKLEARN_NAMES]}, got 'sklearn:{name}'"
        )
    b = getattr(skd, f"load_{name}")()
    names = [str(f) for f in b.feature_names]
    return UCIDataset(
        f"sklearn:{name}",
        np.asarray(b.data, dtype=np.float64),
        np.asarray(b.target, dtype=np.int64),
        [],
        "sklearn",
        names,
        [str(t) for t in b.target_names],
    )


# ----------------------------------------------------------------------------- public API


def list_uci(source: str | None = None, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names ``load_uci`` accepts that are available offline now.

    ``source``: ``None`` (all), ``"uci-fd"``, ``"weka"``, ``"mlbench"`` or ``"sklearn"``.
    """
    valid = (None, "uci-fd", "weka", "mlbench", "sklearn")
    if source not in valid:
        raise ValueError(f"source must be one of {valid}, got {source!r}")
    root = _data_dir_fn(data_dir)
    out: list[str] = []
    if source in (None, "uci-fd"):
        out += list(UCI_FD_NAMES)
    if source in (None, "weka") and (root / "weka").is_dir():
        files = {p.stem: p for p in sorted((root / "weka").rglob("*.arff"))}
        out += [f"weka:{k}" for k in sorted(files) if _arff_is_classification(files[k])]
    if source in (None, "mlbench") and (root / "mlbench").is_dir():
        have = {p.stem for p in (root / "mlbench").rglob("*.rda")}
        out += [f"mlbench:{k}" for k in MLBENCH_TARGETS if k in have]
    if source in (None, "sklearn"):
        out += [f"sklearn:{n}" for n in SKLEARN_NAMES]
    return out


def load_uci(name: str, data_dir: str | os.PathLike | None = None) -> UCIDataset:
    """Load a UCI classification dataset by name (see the module docstring for the sources).

    >>> ds = load_uci("ecoli")
    >>> X_tr, y_tr, X_va, y_va, X_te, y_te = ds.split(0)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    root = _data_dir_fn(data_dir)
    if ":" in name:
        source, _, rest = name.partition(":")
        if source == "weka":
            return _load_weka(rest, root)
        if source == "mlbench":
            return _load_mlbench(rest, root)
        if source == "sklearn":
            return _load_sklearn(rest)
        if source == "uci-fd" and rest in UCI_FD_NAMES:
            return _load_fd(rest, root)
        raise ValueError(
            f"name must start with one of 'uci-fd:', 'weka:', 'mlbench:', 'sklearn:' "
            f"or be a fixed-split name, got {name!r}"
        )
    if name in UCI_FD_NAMES:
        return _load_fd(name, root)
    raise ValueError(
        f"name must be one of the fixed-split UCI sets {list(UCI_FD_NAMES)} or a "
        f"'weka:<file>', 'mlbench:<Name>', 'sklearn:<name>' set, got {name!r}"
    )

