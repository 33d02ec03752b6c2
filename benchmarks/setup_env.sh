#!/usr/bin/env bash
# The benchmarks' own environment (.bench-venv): our package plus the peers we compare with
# (MONAI, nnU-Net v2.8.1). The peers are never dependencies of swinfuse_auto. nnU-Net is installed
# with --no-deps because its timm dependency would pull a CUDA torch (see ../shared/REFERENCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_CONSTRAINT="$PWD/constraints-cpu.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
VENV=.bench-venv
if [ ! -f "$VENV/.installed" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e . monai psutil
  "$VENV/bin/pip" install -q --no-deps nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 \
    batchgeneratorsv2==0.3.6
  "$VENV/bin/pip" install -q graphviz tifffile requests matplotlib seaborn imagecodecs yacs einops \
    pandas scikit-learn scikit-image blosc2 nibabel
  touch "$VENV/.installed"
fi
echo "$VENV ready"
