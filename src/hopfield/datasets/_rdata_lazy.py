"""Reader for R lazy-load databases (``data/Rdata.rdb`` + ``Rdata.rdx``) of installed R packages.

R packages built with ``LazyData: true`` (e.g. Debian's ``r-cran-modeldata``, ``r-cran-ggplot2``)
store their data sets as one database instead of ``.rda`` files:

- ``Rdata.rdx`` — a gzip-compressed R serialisation of a list whose ``variables`` element maps
  each object name to ``(offset, length)`` in the ``.rdb`` file (plus ``references`` and
  ``compressed``, the compression type);
- ``Rdata.rdb`` — concatenated entries; an entry is a 4-byte big-endian uncompressed length
  followed by zlib data (``compressed`` = TRUE / 1), or by one type byte and the payload:
  ``'Z'`` raw LZMA2 (``xz``, the modeldata package), ``'2'`` bzip2, ``'0'`` stored.

The decompressed bytes are a plain R serialisation, read with the ``rdata`` package's parser and
converter (data frames become :class:`pandas.DataFrame`, factors ``pandas.Categorical``).
Objects holding environment references (rare for data sets) are not supported.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import struct
import warnings
import zlib
from pathlib import Path

__all__ = ["lazyload_names", "read_lazyload"]


def _parse(raw: bytes):
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown file type: assumed RDS" for bare serialisations
        parsed = rdata.parser.parse_data(raw, extension=".rds") if _has_ext() else \
            rdata.parser.parse_data(raw)
        return rdata.conversion.convert(parsed)


def _has_ext() -> bool:
    import inspect

    import rdata

    try:
        return "extension" in inspect.signature(rdata.parser.parse_data).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _index(rdx: Path) -> dict[str, tuple[int, int]]:
    if not rdx.is_file():
        raise FileNotFoundError(f"no R lazy-load index at {rdx}")
    index = _parse(gzip.decompress(rdx.read_bytes()))
    return {str(k): (int(v[0]), int(v[1])) for k, v in index["variables"].items()}


def lazyload_names(base: str | os.PathLike[str]) -> list[str]:
    """Object names in the lazy-load database ``base`` (path without ``.rdb`` / ``.rdx``)."""
    return sorted(_index(Path(f"{base}.rdx")))


def _decompress(blob: bytes, name: str) -> bytes:
    if len(blob) < 5:
        raise ValueError(f"lazy-load entry {name!r} is truncated ({len(blob)} bytes)")
    n = struct.unpack(">I", blob[:4])[0]
    body = blob[4:]
    kind = body[:1]
    if kind == b"Z":
        out = lzma.decompress(body[1:], format=lzma.FORMAT_RAW,
                              filters=[{"id": lzma.FILTER_LZMA2,
                                         "preset": 9 | lzma.PRESET_EXTREME}])
    elif kind == b"2":
        out = bz2.decompress(body[1:])
    elif kind == b"0":
        out = body[1:]
    else:
        out = zlib.decompress(body)
    if len(out) != n:
        raise ValueError(f"lazy-load entry {name!r} decompressed to {len(out)} bytes, expected {n}")
    return out


def read_lazyload(base: str | os.PathLike[str], name: str):
    """The R object ``name`` of the lazy-load database ``base`` (``.../data/Rdata``), converted
    by ``rdata`` (a data frame becomes a :class:`pandas.DataFrame`)."""
    base = Path(base)
    index = _index(Path(f"{base}.rdx"))
    if name not in index:
        raise KeyError(f"{name!r} is not in {base}.rdb; available: {sorted(index)}")
    off, length = index[name]
    with open(f"{base}.rdb", "rb") as f:
        f.seek(off)
        blob = f.read(length)
    return _parse(_decompress(blob, name))
