"""Benchmark: ``predict`` on a CT of realistic size, and our sliding window against MONAI's.

What is measured, and why:

* The input is one generated CT of clinical size (default 512 x 512 x 200 voxels of
  0.7 x 0.7 x 2.5 mm, int16 Hounsfield units, as scanners write them), so reading, cropping,
  normalising, resampling, resampling back, arg-max and compressed writing cost what they cost in
  practice. It is cached in ``WORKDIR/raw``.
* The model is the CPU planner's network (Swin-DIM UNETR, the default plan's feature size: 12
  on a CPU) with random weights in the trained-model format: speed does not depend on the
  weights. It runs at ``--target-spacing`` (default 8 x 4.5 x 4.5 mm) with ``--patch`` (default
  32 x 64 x 64), much coarser and smaller than a real plan, so that the run takes minutes
  instead of hours on two cores: a real plan has many more windows per case, so the network
  share here is *lower* than in practice, which makes the overhead target harder to meet, not
  easier. ``--planned-patch`` uses the plan's own patch instead.
* ``ours``: the ``predict`` pipeline (``predict_folder``) on that case, in a fresh process, with
  its own stage timings: reading + preprocessing, network (patch-sized windows in float32, as
  MONAI's, Gaussian weighting, 8-fold mirroring, all windows), resampling back + arg-max,
  writing. Target: everything but the network at most 15% of the wall time. Peak memory is the
  process's peak RSS.
* ``monai``: in another fresh process, the same preprocessed volume through
  ``monai.inferers.sliding_window_inference`` with the same network, ``overlap=0.5``,
  ``mode="gaussian"`` (sigma 1/8 of the window, as ours), window batch 1, and mirroring done the
  same way (each window predicted with all 8 flips, softmax averaged). Target: our network stage
  over MONAI's at most 1.0. Window counts are printed because the two place windows differently
  (nnU-Net's fewest-windows rule against MONAI's fixed interval).
* ``--compare settings``: the same ``predict`` pipeline twice, the old default against the
  fastest settings: ``window`` (patch-sized windows, 50% overlap) in float32, against ``auto``
  tiles (larger
  than the patch, inside the volume, the fewest voxels in all within the memory budget) in
  ``auto`` precision (bf16 where measured faster).
  Prints each side's seconds (network stage and whole pipeline), their ratio, the tiles, the
  precision chosen, and how far the two agree: Dice between the two label maps per label, pooled
  over the cases (and each side's Dice against ``--labels`` when given); ``--also window+bf16
  auto+fp32 window+auto`` adds the mixed settings, to tell what the tiles and the precision
  each change (``window+auto`` is the current default).
  ``--model`` and
  ``--images`` run it on a trained model and real images instead of the generated CT and random
  weights (random weights say nothing about agreement: their outputs are near-uniform).
* Each side runs ``--repeats`` times (default 3), alternating, and its fastest run counts: on a
  shared machine a busy neighbour stalls torch's two threads and the same sliding window then
  takes 4 to 8 times longer, so single runs say more about the neighbours than about the code.
  CPU time is printed as well; ``--threads 1`` makes both sides immune to that stall.

Run with the benchmark environment (benchmarks/setup_env.sh)::

    .bench-venv/bin/python benchmarks/predict.py
    .venv/bin/python benchmarks/predict.py --compare settings --threads 1 --repeats 1 \
        --model RESULTS/Dataset990_SwinfuseExample/swin_dim_finetune__default \
        --images RAW/Dataset990_SwinfuseExample/imagesTr --labels RAW/.../labelsTr
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import GB, generated_ct, process_memory_bytes, untrained_models

DATASET = "Dataset992_PredictBench"
TARGET_OVERHEAD = 0.15
TARGET_RATIO = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench_output/predict"))
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512),
                        metavar=("Z", "Y", "X"), help="voxels of the generated CT")
    parser.add_argument("--spacing", type=float, nargs=3, default=(2.5, 0.7, 0.7),
                        metavar=("Z", "Y", "X"), help="voxel size of the generated CT (mm)")
    parser.add_argument("--target-spacing", type=float, nargs=3, default=(8.0, 4.5, 4.5),
                        metavar=("Z", "Y", "X"), help="network spacing (mm); see the notes")
    parser.add_argument("--patch", type=int, nargs=3, default=(32, 64, 64),
                        metavar=("Z", "Y", "X"), help="network patch (see the notes)")
    parser.add_argument("--planned-patch", action="store_true",
                        help="use the default planner's patch instead of --patch")
    parser.add_argument("--no-tta", action="store_true", help="no mirroring, for both")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads in both workers (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating runs of each; the fastest counts (shared machines)")
    parser.add_argument("--compare", choices=("monai", "settings"), default="monai",
                        help="monai: our sliding window against MONAI's; settings: old default "
                             "(window, fp32) against the fastest (auto tiles, auto precision)")
    parser.add_argument("--also", nargs="+", default=[],
                        choices=("window+bf16", "auto+fp32", "window+auto"),
                        help="with --compare settings: also these mixed settings")
    parser.add_argument("--model", type=Path,
                        help="a trained model folder (default: random weights, generated CT)")
    parser.add_argument("--images", type=Path,
                        help="folder of images to predict (with --model; default: the CT)")
    parser.add_argument("--labels", type=Path,
                        help="reference labels of --images: each side's Dice against them")
    parser.add_argument("--worker", choices=("ours", "monai"), help=argparse.SUPPRESS)
    parser.add_argument("--tiling", default="window", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.model is None) != (args.images is None):
        parser.error("--model and --images go together")
    return args


def _peak_rss_gb() -> float:
    return process_memory_bytes("VmHWM") / GB


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- set-up (main process) -------------------------------------------------------------------
def planned_architecture(raw_dir: Path, args: argparse.Namespace) -> tuple[dict, tuple]:
    """Feature size (and, with --planned-patch, patch) of the default CPU plan of this CT."""
    try:
        from swinfuse_auto.api import plan_dataset

        plan = plan_dataset(raw_dir, device="cpu", preprocessed=str(args.workdir / "pre")).plan
    except Exception as exc:  # the planner may not work in every checkout
        print(f"default planner unavailable ({type(exc).__name__}: {exc}); using feature size "
              f"12 and patch {tuple(args.patch)}")
        return {"feature_size": 12}, tuple(args.patch)
    patch = tuple(plan.configuration.patch_size)
    print(f"default CPU plan of this CT: feature size {plan.architecture.feature_size}, patch "
          f"{list(patch)} at {list(plan.configuration.spacing)} mm")
    arch = {"feature_size": plan.architecture.feature_size, "dim": plan.architecture.dim}
    return arch, patch if args.planned_patch else tuple(args.patch)


def build_model(raw_dir: Path, args: argparse.Namespace) -> Path:
    from swinfuse_auto.io.atomic import read_json

    helpers = untrained_models()
    dataset_json = read_json(raw_dir / "dataset.json")
    arch, patch = planned_architecture(raw_dir, args)
    plan = helpers.untrained_plan(dataset_json, tuple(args.target_spacing), patch, arch)
    print(f"network: feature size {plan.architecture.feature_size}, patch {list(patch)}, "
          f"spacing {list(args.target_spacing)} mm, {plan.architecture.num_classes} classes")
    return helpers.write_untrained_model(args.workdir / "model", plan, dataset_json, (0,))


#: The settings --compare settings puts side by side: the old default, then the fastest;
#: ``--also`` adds the mixed ones, to tell what the tiles and the precision each change.
OLD, NEW = "window+fp32", "auto+auto"
SETTINGS = {OLD: ("window", "fp32"), NEW: ("auto", "auto"), "window+bf16": ("window", "bf16"),
            "auto+fp32": ("auto", "fp32"), "window+auto": ("window", "auto")}


def _model_dir(args: argparse.Namespace) -> Path:
    return args.model if args.model is not None else args.workdir / "model"


def _images_dir(args: argparse.Namespace) -> Path:
    return args.images if args.images is not None else args.workdir / "raw" / DATASET / "imagesTr"


def run_worker(kind: str, args: argparse.Namespace, settings: str = OLD
               ) -> dict[str, Any]:
    """Run a worker in a fresh process (its own peak RSS, no warm caches from the other)."""
    tiling, precision = SETTINGS[settings]
    command = [sys.executable, __file__, "--worker", kind, "--workdir", str(args.workdir),
               "--threads", str(args.threads), "--tiling", tiling, "--precision", precision,
               "--model", str(_model_dir(args)), "--images", str(_images_dir(args)),
               "--out", str(args.workdir / f"out_{settings}")]
    if args.no_tta:
        command.append("--no-tta")
    # the precision decision is cached in the work folder: the first run measures it
    env = {**os.environ, "SWINFUSE_CACHE": os.environ.get("SWINFUSE_CACHE",
                                                          str(args.workdir / "cache"))}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- workers (fresh processes) ---------------------------------------------------------------
def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    from swinfuse_auto.api import load_model, predict_folder

    loading = time.perf_counter()
    model = load_model(args.model, device="cpu", tta=not args.no_tta, tiling=args.tiling,
                       precision=args.precision)
    load_s = time.perf_counter() - loading
    tiles: list[dict[str, Any]] = []
    model.ensemble.predict = _counting(  # type: ignore[method-assign]
        model.ensemble, tiles)
    started, cpu = time.perf_counter(), _cpu_s()
    report = predict_folder(args.images, args.out, model, overwrite=True)
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
    if report.failed:
        raise SystemExit(f"prediction failed: {report.failed}")
    return {"wall_s": wall, "cpu_s": cpu, **report.timings,
            "windows": sum(t["count"] for t in tiles), "tiles": tiles, "model_load_s": load_s,
            "precision": model.ensemble.calibration.precision, "peak_rss_gb": _peak_rss_gb()}


def _counting(ensemble: Any, tiles: list[dict[str, Any]]) -> Any:
    """``ensemble.predict`` that records each volume's shape, tile and tile count."""
    predict = ensemble.predict

    def wrapped(volume: Any, progress: Any = None) -> Any:
        grid = ensemble.tile_grid(volume.shape[1:])
        tiles.append({"shape": list(volume.shape[1:]), "tile": list(grid.tile),
                      "count": grid.count})
        return predict(volume, progress)
    return wrapped


def worker_monai(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from monai.inferers import sliding_window_inference

    from swinfuse_auto.api import load_model
    from swinfuse_auto.inference.input_cases import find_input_cases, read_input_case
    from swinfuse_auto.inference.tta import mirror_axes_combinations

    model = load_model(args.model, device="cpu", tta=not args.no_tta, tiling="window",
                       precision="fp32")
    [case] = find_input_cases(args.images, 1)
    prepared = model.prepare(*read_input_case(case), case.case_id)
    network = model.ensemble.networks[0]
    combos = mirror_axes_combinations(() if args.no_tta else (0, 1, 2))
    calls = [0]

    def mirrored(batch: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        total = torch.zeros((), dtype=torch.float32)
        for combo in combos:
            dims = [axis + 2 for axis in combo]
            out = torch.softmax(network(batch.flip(dims) if dims else batch), dim=1)
            total = total + (out.flip(dims) if dims else out)
        return total / len(combos)

    volume = torch.from_numpy(prepared.data)[None]
    started, cpu = time.perf_counter(), _cpu_s()
    with torch.no_grad():
        probabilities = sliding_window_inference(
            volume, model.plan.configuration.patch_size, 1, mirrored, overlap=0.5,
            mode="gaussian", sigma_scale=0.125, padding_mode="constant", cval=0.0)
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    return {"network_s": elapsed, "cpu_s": cpu, "windows": calls[0],
            "network_shape": list(volume.shape[2:]),
            "output_shape": list(probabilities.shape), "peak_rss_gb": _peak_rss_gb()}


# -- report ------------------------------------------------------------------------------------
def report(ours: dict[str, Any], monai: dict[str, Any]) -> dict[str, Any]:
    wall = ours["wall_s"]
    parts = {"reading + preprocessing": ours["read_preprocess"], "network": ours["network"],
             "resampling back + arg-max": ours["resample"], "writing": ours["write"]}
    print(f"\nours (predict pipeline, one case): {wall:.1f} s wall (model loaded once before: "
          f"{ours['model_load_s']:.1f} s), peak RSS {ours['peak_rss_gb']:.2f} GB, "
          f"{ours['windows']} windows")
    for name, seconds in parts.items():
        print(f"  {name:<28} {seconds:8.1f} s  {100 * seconds / wall:5.1f}%")
    overhead = (wall - ours["network"]) / wall
    ratio = ours["network"] / monai["network_s"]
    cpu_ratio = ours["cpu_s"] / monai["cpu_s"]
    verdict = "met" if overhead <= TARGET_OVERHEAD else "NOT met"
    print(f"  everything but the network: {100 * overhead:.1f}% of wall "
          f"(target <= {100 * TARGET_OVERHEAD:.0f}%: {verdict})")
    print(f"\nMONAI sliding_window_inference on the same {monai['network_shape']} volume: "
          f"{monai['network_s']:.1f} s, {monai['windows']} windows, peak RSS "
          f"{monai['peak_rss_gb']:.2f} GB")
    print(f"ours / MONAI (network stage, wall): {ratio:.2f} "
          f"(target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}); "
          f"CPU time of our whole pipeline / MONAI's network stage: {cpu_ratio:.2f}")
    return {"ours": ours, "monai": monai, "overhead_fraction": overhead, "ratio_vs_monai": ratio,
            "cpu_ratio_pipeline_vs_monai": cpu_ratio}


# -- old default against the fastest settings ------------------------------------------------------
def pooled_dice(folder_a: Path, folder_b: Path) -> dict[int, float]:
    """Dice per label between the label maps of two folders (same file names), pooled over the
    cases; labels absent from both everywhere are left out."""
    import numpy as np
    import SimpleITK as sitk

    overlap: dict[int, int] = {}
    sizes: dict[int, int] = {}
    for path_a in sorted(folder_a.glob("*.nii.gz")):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(path_a)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(folder_b / path_a.name)))
        for label in (set(np.unique(a)) | set(np.unique(b))) - {0}:
            in_a, in_b = a == label, b == label
            overlap[int(label)] = overlap.get(int(label), 0) + int((in_a & in_b).sum())
            sizes[int(label)] = sizes.get(int(label), 0) + int(in_a.sum() + in_b.sum())
    return {label: 2 * overlap[label] / sizes[label] for label in sorted(sizes)}


def _dice_text(dice: dict[int, float]) -> str:
    return ", ".join(f"{label}: {value:.3f}" for label, value in dice.items()) or "no labels"


def compare_settings(args: argparse.Namespace) -> None:
    """Old default (window, fp32) against the fastest settings (auto tiles, auto precision)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in (OLD, NEW, *args.also)}
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        for name in runs:
            runs[name].append(run_worker("ours", args, name))
    best = {name: min(rows, key=lambda r: r["network"]) for name, rows in runs.items()}
    print(f"\nimages {_images_dir(args)}, model {_model_dir(args)}, "
          f"{args.threads or 'default'} thread(s), TTA {'off' if args.no_tta else 'on'}")
    for name, row in best.items():
        tiles = "; ".join(f"{t['count']} x {'x'.join(map(str, t['tile']))} on "
                          f"{'x'.join(map(str, t['shape']))}" for t in row["tiles"])
        print(f"  {name:<12} network {row['network']:7.1f} s, whole predict {row['wall_s']:7.1f} s"
              f" ({row['cpu_s']:.1f} s CPU), precision {row['precision']}, peak RSS "
              f"{row['peak_rss_gb']:.2f} GB; tiles: {tiles}")
    old, new = best[OLD], best[NEW]
    ratio = {"network": old["network"] / new["network"], "wall": old["wall_s"] / new["wall_s"],
             "cpu": old["cpu_s"] / new["cpu_s"]}
    print(f"  speed-up (old / new): network {ratio['network']:.2f}x, whole predict "
          f"{ratio['wall']:.2f}x (CPU time {ratio['cpu']:.2f}x)")
    results: dict[str, Any] = {"best": best, "speedup": ratio, "runs": runs}
    for name in runs:
        if name != OLD:
            agreement = pooled_dice(args.workdir / f"out_{OLD}", args.workdir / f"out_{name}")
            results[f"agreement_dice_{name}"] = agreement
            print(f"  Dice between the label maps of {OLD} and {name}, per label: "
                  f"{_dice_text(agreement)}")
    if args.labels is not None:
        for name in runs:
            dice = pooled_dice(args.workdir / f"out_{name}", args.labels)
            results[f"reference_dice_{name}"] = dice
            print(f"  Dice against {args.labels}, {name}: {_dice_text(dice)}")
    (args.workdir / "results_settings.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results -> {args.workdir / 'results_settings.json'}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        worker = worker_ours if args.worker == "ours" else worker_monai
        print(json.dumps(worker(args)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        raw_dir = generated_ct(args.workdir / "raw", DATASET, args.shape, args.spacing)
        build_model(raw_dir, args)
    if args.compare == "settings":
        compare_settings(args)
        return
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "monai": []}
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        for kind in runs:
            runs[kind].append(run_worker(kind, args))
    ours = min(runs["ours"], key=lambda r: r["network"])
    monai = min(runs["monai"], key=lambda r: r["network_s"])
    print(f"network stage per run (s): ours {[round(r['network'], 1) for r in runs['ours']]}, "
          f"MONAI {[round(r['network_s'], 1) for r in runs['monai']]}")
    results = report(ours, monai)
    results["runs"] = runs
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results -> {args.workdir / 'results.json'}")


if __name__ == "__main__":
    main()
