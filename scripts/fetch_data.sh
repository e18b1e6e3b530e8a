#!/usr/bin/env bash
# Fetch the raw offline UCI files that Debian ships into the hopfield data directory:
#   DATA/weka/    ARFF files of Debian's `weka` package   (iris, glass, ionosphere, diabetes, ...)
#   DATA/mlbench/ R data of Debian's `r-cran-mlbench`     (Sonar, Vehicle, Vowel, Zoo, ...)
#   DATA/modeldata/ R lazy-load data of `r-cran-modeldata` (ames, concrete, mlc_churn, ...)
#   DATA/ggplot2/   R lazy-load data of `r-cran-ggplot2`   (diamonds)
# DATA is the first argument, else $HOPFIELD_DATA, else ~/.cache/hopfield.
# Needs apt-get (Debian/Ubuntu); nothing is installed system-wide (apt-get download + dpkg -x).
set -euo pipefail
DATA=${1:-${HOPFIELD_DATA:-$HOME/.cache/hopfield}}
mkdir -p "$DATA"
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    echo "fetch_data: apt-get/dpkg not available; skipping the Debian UCI files" >&2
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() {  # package, target folder
    local pkg=$1 dest=$2
    if [ -d "$DATA/$dest" ]; then echo "fetch_data: $DATA/$dest exists"; return; fi
    (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) || {
        echo "fetch_data: could not download $pkg; skipping" >&2; return; }
    mkdir -p "$tmp/x-$dest" && dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/x-$dest"
    mv "$tmp/x-$dest" "$DATA/$dest"   # appears whole or not at all
    echo "fetch_data: $pkg -> $DATA/$dest"
}
fetch weka weka
fetch r-cran-mlbench mlbench
fetch r-cran-modeldata modeldata
fetch r-cran-ggplot2 ggplot2
