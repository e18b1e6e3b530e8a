"""Write the fixed (docstring, name) pair set used by `hopfield reproduce cloob`.

Run once with CPython 3.11: ``python scripts/make_stdlib_pairs.py``. It extracts the pairs from the
running interpreter's standard library (`stdlib_pairs(source="installed")`) and writes them, with the
Python version they came from, to ``src/hopfield/datasets/_data/stdlib_pairs.json.gz``. The shipped
file makes the benchmark identical on every machine; rerun it only to change the pair set.
"""

import gzip
import json
import platform
import sys

from hopfield._io import atomic_write
from hopfield.reproduce.cloob import PAIRS_FILE, stdlib_pairs


def main() -> None:
    pairs = stdlib_pairs(source="installed")
    doc = {"python": platform.python_version(), "implementation": platform.python_implementation(),
           "n_pairs": len(pairs), "pairs": [list(p) for p in pairs]}

    def save(tmp: str) -> None:
        with gzip.GzipFile(tmp, "wb", mtime=0) as f:  # mtime=0: same bytes on every rerun
            f.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    atomic_write(PAIRS_FILE, save)
    print(f"wrote {len(pairs)} pairs from Python {doc['python']} to {PAIRS_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
