"""Measure the memory of one inference forward pass against tile size; fit the cost-model constants.

``swinfuse_auto/networks/cost_model.py`` sizes inference tiles with
``estimate_inference_memory_bytes``: peak memory of one forward pass of the Swin-DIM UNETR in
inference mode, ``c0 + V * (c1 * F + c2)`` for a tile of V voxels and feature size F, with one
pair of constants per precision (float32, bf16 autocast). This script measures it: each point
runs in a fresh process (its own peak), builds the network with random weights, keeps freed
memory in the heap as ``predict`` does (``reuse_freed_memory``), runs the forward pass twice and
records the peak RSS (VmHWM) over the RSS before the first pass, and the seconds of the second
pass. Then it fits the constants by least squares and prints them, with each point's error, to
paste into the module. Time is printed too but not fitted: ``predict`` measures the speed of the
machine at hand itself (``swinfuse_auto.inference.calibration``).

    .venv/bin/python benchmarks/measure_inference_cost.py            # about 5 minutes, 1 thread
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from typing import Any

from bench_common import process_memory_bytes

POINTS: tuple[tuple[int, tuple[int, int, int]], ...] = (
    (12, (32, 64, 64)), (12, (32, 160, 160)), (12, (64, 128, 128)), (12, (32, 320, 320)),
    (12, (64, 256, 256)), (24, (32, 160, 160)), (24, (64, 128, 128)), (24, (32, 320, 320)),
)
PRECISIONS = ("fp32", "bf16")


def worker(feature_size: int, tile: tuple[int, int, int], precision: str, threads: int
           ) -> dict[str, Any]:
    import contextlib

    import torch

    from swinfuse_auto.models.device import reuse_freed_memory
    from swinfuse_auto.networks.architecture import SwinArchitecture
    from swinfuse_auto.networks.factory import build_segmentation_network

    torch.set_num_threads(threads)
    arch = SwinArchitecture(in_channels=1, num_classes=2, feature_size=feature_size)
    network = build_segmentation_network(arch).eval()
    x = torch.randn(1, 1, *tile)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with reuse_freed_memory(), torch.inference_mode(), autocast:
        before = process_memory_bytes("VmRSS")
        network(x)
        started = time.perf_counter()
        network(x)
        seconds = time.perf_counter() - started
        peak = process_memory_bytes("VmHWM")
    return {"feature_size": feature_size, "tile": list(tile), "precision": precision,
            "peak_bytes": peak - before, "seconds": seconds}


def fit(rows: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Least squares of peak = c0 + c1 * V * F + c2 * V."""
    import numpy as np

    a = np.array([[1.0, math.prod(r["tile"]) * r["feature_size"], math.prod(r["tile"])]
                  for r in rows])
    b = np.array([r["peak_bytes"] for r in rows], dtype=float)
    coefficients, *_ = np.linalg.lstsq(a, b, rcond=None)
    return tuple(float(c) for c in coefficients)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(spec["f"], tuple(spec["tile"]), spec["p"], args.threads)))
        return
    rows = []
    for precision in PRECISIONS:
        for feature_size, tile in POINTS:
            spec = json.dumps({"f": feature_size, "tile": tile, "p": precision})
            done = subprocess.run([sys.executable, __file__, "--worker", spec, "--threads",
                                   str(args.threads)], capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{precision} F={feature_size:2d} tile {tile}: peak +{row['peak_bytes'] / 1e9:.3f}"
                  f" GB, {row['seconds']:.2f} s", flush=True)
    for precision in PRECISIONS:
        subset = [r for r in rows if r["precision"] == precision]
        c0, c1, c2 = fit(subset)
        print(f"\n{precision}: c0 = {c0:.4g} bytes, c1 = {c1:.4g} bytes per voxel-feature, "
              f"c2 = {c2:.4g} bytes per voxel")
        for r in subset:
            voxels = math.prod(r["tile"])
            model = c0 + c1 * voxels * r["feature_size"] + c2 * voxels
            print(f"  F={r['feature_size']:2d} {r['tile']}: measured {r['peak_bytes'] / 1e9:.3f} GB,"
                  f" model {model / 1e9:.3f} GB ({100 * (model / r['peak_bytes'] - 1):+.0f}%)")


if __name__ == "__main__":
    main()
