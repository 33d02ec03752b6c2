"""Benchmark: our ``plan_and_preprocess`` against ``nnUNetv2_plan_and_preprocess -c 3d_fullres``.

What is measured, and why:

* Both commands run as subprocesses, one after the other, on the *same* raw folder of generated
  CT cases of realistic size (512 x 512 in-plane, 80-150 slices of 2.5 mm), with the same number
  of worker processes (``-np N``; nnU-Net also gets ``-npfp N`` for its fingerprint), each into a
  fresh output folder. Integrity checking is matched: by default neither reads every voxel twice
  (ours still runs its header-only check, nnU-Net runs none); ``--verify`` makes both do the full
  check (``--verify`` / ``--verify_dataset_integrity``).
* Wall time (``time.perf_counter`` around the subprocess), CPU time of the process tree
  (``RUSAGE_CHILDREN`` before/after) and memory: the peak of the *sum* of the resident set sizes of
  the command and all its descendants, sampled every ``--interval`` seconds with psutil, which is
  what decides whether a machine runs out of RAM with ``-np`` workers; the largest single process
  is recorded too, and the sustained and PSS sums of :class:`TreeSampler`.
* The raw files are read once first, so neither command pays for a cold page cache.
* The target (issue acceptance): ours at most 0.5x nnU-Net's wall time and peak memory. Both
  planners' target spacing, patch size and batch size are printed side by side (nnU-Net plans for
  its default 8 GB GPU; ours plans for this machine unless ``--ours-args`` says otherwise).

By default the in-plane spacing varies per case (0.6-0.8 mm, as between CT scanners and patients)
so that both tools resample; ``--fixed-spacing`` gives every case 0.7 mm (no resampling at all).
Results go to ``WORKDIR/results.json``; the dataset is cached in ``WORKDIR/raw``.

Run with the benchmark environment (benchmarks/setup_env.sh)::

    .bench-venv/bin/python benchmarks/plan_and_preprocess.py --cases 20 --processes 2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil

from bench_common import GB, run_sampled

DATASET_ID = 991
DATASET_NAME = f"Dataset{DATASET_ID:03d}_PlanBench"
SLICE_SPACING_MM = 2.5
IN_PLANE_VOXELS = 512
SLICES_RANGE = (80, 150)
IN_PLANE_SPACING_RANGE = (0.6, 0.8)
FIXED_IN_PLANE_SPACING = 0.7
TARGET_RATIO = 0.5
JUDGED = ("wall_s", "peak_tree_rss_gb", "sustained_tree_rss_gb")
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Measurement:
    """One command's cost."""

    command: str
    returncode: int
    wall_s: float
    cpu_s: float
    peak_tree_rss_gb: float
    sustained_tree_rss_gb: float  # largest sum held for 3 samples in a row
    peak_single_rss_gb: float
    peak_tree_pss_gb: float
    max_processes: int
    log: str
    timeline: list[list[float]]  # [seconds, tree RSS GiB]: the peak of each second
    at_peak: list[list]  # [pid, name, RSS GiB] of every process at the tree RSS peak


# -- dataset ---------------------------------------------------------------------------------
def case_layout(cases: int, seed: int, fixed_spacing: bool) -> list[tuple[int, float]]:
    """(slices, in-plane spacing in mm) of every case, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    slices = rng.integers(SLICES_RANGE[0], SLICES_RANGE[1] + 1, cases)
    if fixed_spacing:
        spacings = np.full(cases, FIXED_IN_PLANE_SPACING)
    else:
        spacings = np.round(rng.uniform(*IN_PLANE_SPACING_RANGE, cases), 3)
    return [(int(z), float(s)) for z, s in zip(slices, spacings)]


def generate_dataset(raw_root: Path, layout: list[tuple[int, float]], seed: int) -> Path:
    """Write the dataset with the example-data generator, one case per call (so every case has
    its own slice count and spacing), then assemble one nnU-Net raw folder atomically.

    A manifest of the layout next to the folder lets a re-run with the same cases skip this.
    """
    from swinfuse_auto.example_data import generate_example_dataset

    target, manifest = raw_root / DATASET_NAME, raw_root / f"{DATASET_NAME}.manifest.json"
    wanted = {"layout": [list(c) for c in layout], "seed": seed}
    if target.is_dir() and manifest.exists() and json.loads(manifest.read_text()) == wanted:
        print(f"dataset: reusing {target}")
        return target
    started = time.perf_counter()
    partial, staging = raw_root / f".{DATASET_NAME}.partial", raw_root / ".staging"
    for folder in (partial, staging, target):
        shutil.rmtree(folder, ignore_errors=True)
    for sub in ("imagesTr", "labelsTr"):
        (partial / sub).mkdir(parents=True)
    for index, (slices, spacing) in enumerate(layout):
        one = generate_example_dataset(staging, "one", ct_cases=1, mr_cases=0,
                                       shape=(slices, IN_PLANE_VOXELS, IN_PLANE_VOXELS),
                                       seed=seed + index,
                                       spacing=(SLICE_SPACING_MM, spacing, spacing), overwrite=True)
        os.replace(one / "imagesTr" / "ct_000_0000.nii.gz",
                   partial / "imagesTr" / f"ct_{index:03d}_0000.nii.gz")
        os.replace(one / "labelsTr" / "ct_000.nii.gz",
                   partial / "labelsTr" / f"ct_{index:03d}.nii.gz")
        description = json.loads((one / "dataset.json").read_text())
    description.update(name=DATASET_NAME, numTraining=len(layout))
    description.pop("example_data", None)
    (partial / "dataset.json").write_text(json.dumps(description, indent=2))
    shutil.rmtree(staging, ignore_errors=True)
    os.replace(partial, target)
    manifest.write_text(json.dumps(wanted))
    print(f"dataset: generated {len(layout)} cases in {time.perf_counter() - started:.0f} s")
    return target


def warm_page_cache(raw_dir: Path) -> None:
    """Read every raw file once so both commands start with the same (warm) page cache."""
    for path in sorted(raw_dir.rglob("*.nii.gz")):
        path.read_bytes()


# -- measurement -----------------------------------------------------------------------------
def measure(command: list[str], env: dict[str, str], log_path: Path,
            interval: float) -> Measurement:
    """Run ``command`` to completion, sampling the memory of its process tree."""
    run = run_sampled(command, env, log_path, interval)
    sampler = run.sampler
    timeline = [[float(t), round(v / GB, 3)] for t, v in sorted(sampler.per_second.items())]
    return Measurement(shlex.join(command), run.returncode, run.wall_s, run.cpu_s,
                       sampler.peak_rss / GB, sampler.sustained / GB, sampler.peak_single / GB,
                       sampler.peak_pss / GB, sampler.most,
                       str(log_path), timeline, sampler.at_peak)


def run_ours(raw_root: Path, out: Path, processes: int, verify: bool, extra: list[str],
             interval: float) -> Measurement:
    """Our command on a fresh preprocessed root."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "SWINFUSE_RAW": str(raw_root), "SWINFUSE_PREPROCESSED": str(out / "pre")}
    command = [str(BIN / "plan_and_preprocess"), "-d", DATASET_NAME, "-np", str(processes),
               "--no-progress", *(["--verify"] if verify else []), *extra]
    return measure(command, env, out / "log.txt", interval)


def run_nnunet(raw_root: Path, out: Path, processes: int, verify: bool,
               interval: float) -> Measurement:
    """``nnUNetv2_plan_and_preprocess -c 3d_fullres`` on fresh preprocessed/results roots."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "nnUNet_raw": str(raw_root), "nnUNet_preprocessed": str(out / "pre"),
           "nnUNet_results": str(out / "results")}
    command = [str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c",
               "3d_fullres", "-np", str(processes), "-npfp", str(processes), "--no_pbar",
               *(["--verify_dataset_integrity"] if verify else [])]
    return measure(command, env, out / "log.txt", interval)


# -- plans -----------------------------------------------------------------------------------
def read_plan(out: Path, tool: str) -> dict:
    """Spacing, patch and batch size of our plan or nnU-Net's 3d_fullres ({} when missing)."""
    path = out / "pre" / DATASET_NAME / ("plans.json" if tool == "ours" else "nnUNetPlans.json")
    if not path.exists():
        return {}
    plan = json.loads(path.read_text())
    config = plan["configuration"] if tool == "ours" else plan["configurations"]["3d_fullres"]
    target = plan.get("target") if tool == "ours" else {"gpu_memory_gb": 8, "kind": "cuda"}
    return {"spacing": config["spacing"], "patch_size": config["patch_size"],
            "batch_size": config["batch_size"], "planned_for": target}


def preprocessed_bytes(folder: Path) -> int:
    """Bytes of everything a command wrote (its cache size on disk)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- report ----------------------------------------------------------------------------------
def _verdict(ratio: float) -> str:
    return "PASS" if ratio <= TARGET_RATIO else "FAIL"


def format_report(result: dict) -> str:
    """The printed table: costs with ratios and verdicts, then both plans side by side."""
    ours, theirs = result["ours"], result["nnunet"]
    rows = [("wall time (s)", "wall_s", True), ("peak tree RSS (GiB)", "peak_tree_rss_gb", True),
            ("sustained tree RSS (GiB)", "sustained_tree_rss_gb", True),
            ("largest process RSS (GiB)", "peak_single_rss_gb", False),
            ("peak tree PSS (GiB)", "peak_tree_pss_gb", False),
            ("CPU time, tree (s)", "cpu_s", False), ("output on disk (GiB)", "output_gb", False),
            ("processes (max)", "max_processes", False), ("peak at (s)", "peak_at_s", False)]
    lines = [f"{'':26}{'ours':>10}{'nnU-Net':>10}{'ours/nnU':>10}   target"]
    for title, key, judged in rows:
        a, b = ours[key], theirs[key]
        ratio = a / b if b else float("nan")
        verdict = f"<= {TARGET_RATIO}x  {_verdict(ratio)}" if judged else ""
        lines.append(f"{title:26}{a:>10.2f}{b:>10.2f}{ratio:>9.2f}x   {verdict}")
    plans = result["plans"]
    lines += ["", f"{'plan (3d)':26}{'ours':<36}nnU-Net 3d_fullres"]
    for title, key in (("target spacing (mm)", "spacing"), ("patch size", "patch_size"),
                       ("batch size", "batch_size"), ("planned for", "planned_for")):
        a, b = plans["ours"].get(key), plans["nnunet"].get(key)
        lines.append(f"{title:26}{_short(a):<36}{_short(b)}")
    return "\n".join(lines)


def _at_peak(rows: list[list]) -> str:
    """'3 x python3 (1.44 GiB), 1 x plan_and_prepro (0.34)': the processes at a peak."""
    groups: dict[str, list[float]] = {}
    for _, name, rss in rows:
        groups.setdefault(name, []).append(rss)
    return ", ".join(f"{len(v)} x {k} ({sum(v):.2f} GiB)" for k, v in groups.items())


def _short(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
    return str(value)


def describe_setup(layout: list[tuple[int, float]], args: argparse.Namespace) -> dict:
    """What ran where: dataset shape, processes, machine and its load at the start."""
    slices = [z for z, _ in layout]
    spacings = [s for _, s in layout]
    return {"cases": len(layout), "in_plane_voxels": IN_PLANE_VOXELS,
            "slices": {"min": min(slices), "median": float(np.median(slices)), "max": max(slices)},
            "slice_spacing_mm": SLICE_SPACING_MM,
            "in_plane_spacing_mm": {"min": min(spacings), "median": float(np.median(spacings)),
                                    "max": max(spacings)},
            "processes": args.processes, "full_verify": args.verify,
            "cpus": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / GB, 1),
            "load_at_start": [round(v, 2) for v in os.getloadavg()]}


def _measured(measurement: Measurement, out: Path) -> dict:
    peak_at = max(measurement.timeline, key=lambda row: row[1], default=[0.0, 0.0])[0]
    return {**asdict(measurement), "output_gb": preprocessed_bytes(out / "pre") / GB,
            "peak_at_s": peak_at}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20, help="generated CT cases (default 20)")
    parser.add_argument("--processes", "-np", type=int, default=2,
                        help="worker processes for both commands (default 2)")
    parser.add_argument("--workdir", type=Path, default=Path("bench_output/plan_and_preprocess"),
                        help="dataset cache, outputs, logs and results.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated dataset")
    parser.add_argument("--fixed-spacing", action="store_true",
                        help=f"every case {FIXED_IN_PLANE_SPACING} mm in-plane (no resampling "
                             "needed) instead of 0.6-0.8 mm varying per case")
    parser.add_argument("--verify", action="store_true",
                        help="full integrity check in both (--verify / "
                             "--verify_dataset_integrity)")
    parser.add_argument("--only", choices=("ours", "nnunet"), default=None,
                        help="run one command only (no ratios; for profiling)")
    parser.add_argument("--ours-args", default="", help="extra arguments for our command, "
                        "e.g. '--gpu-memory-gb 8' to plan for nnU-Net's default GPU")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="memory sampling interval in seconds (default 0.1)")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.processes < 1 or args.interval <= 0:
        parser.error("--cases and --processes must be at least 1, --interval positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir.resolve()
    raw_root = workdir / "raw"
    raw_root.mkdir(parents=True, exist_ok=True)
    layout = case_layout(args.cases, args.seed, args.fixed_spacing)
    raw_dir = generate_dataset(raw_root, layout, args.seed)
    setup = describe_setup(layout, args)
    print(f"setup: {json.dumps(setup)}", flush=True)
    warm_page_cache(raw_dir)
    runners = {"ours": lambda: run_ours(raw_root, workdir / "ours", args.processes, args.verify,
                                        shlex.split(args.ours_args), args.interval),
               "nnunet": lambda: run_nnunet(raw_root, workdir / "nnunet", args.processes,
                                            args.verify, args.interval)}
    measured: dict[str, dict] = {}
    for name, run in runners.items():
        if args.only in (None, name):
            print(f"running {name} ...", flush=True)
            measurement = run()
            measured[name] = _measured(measurement, workdir / name)
            print(f"  {name}: {measurement.wall_s:.1f} s, rc {measurement.returncode}", flush=True)
    setup["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    plans = {tool: read_plan(workdir / tool, tool) for tool in ("ours", "nnunet")}
    result = {"setup": setup, **measured, "plans": plans}
    failed = [name for name, m in measured.items() if m["returncode"] != 0]
    if not failed and len(measured) == 2:
        result["ratios"] = {k: measured["ours"][k] / measured["nnunet"][k]
                            for k in (*JUDGED, "cpu_s")}
        result["pass"] = all(result["ratios"][k] <= TARGET_RATIO for k in JUDGED)
    (workdir / "results.json").write_text(json.dumps(result, indent=2))
    print_summary(result, setup, failed, workdir)
    return 1 if failed else 0


def print_summary(result: dict, setup: dict, failed: list[str], workdir: Path) -> None:
    """Setup line, the table (when both ran) and where the results are."""
    print(f"\n{setup['cases']} CT cases, {IN_PLANE_VOXELS}x{IN_PLANE_VOXELS} in-plane at "
          f"{setup['in_plane_spacing_mm']['min']}-{setup['in_plane_spacing_mm']['max']} mm, "
          f"{setup['slices']['min']}-{setup['slices']['max']} slices of {SLICE_SPACING_MM} mm; "
          f"-np {setup['processes']}, full verify: {setup['full_verify']}")
    print(f"machine: {setup['cpus']} CPUs, {setup['ram_gb']} GiB RAM; load average at start "
          f"{setup['load_at_start']}, at end {setup['load_at_end']}\n")
    for name in failed:
        print(f"{name} FAILED (rc {result[name]['returncode']}); see {result[name]['log']}")
    if "ratios" in result:
        print(format_report(result))
        for name in ("ours", "nnunet"):
            print(f"{name} at its RSS peak: {_at_peak(result[name]['at_peak'])}")
        print(f"\noverall: {'PASS' if result['pass'] else 'FAIL'} "
              f"(ours <= {TARGET_RATIO}x nnU-Net in wall time and peak memory)")
    for name in [n for n in ("ours", "nnunet") if n in result and "ratios" not in result]:
        m = result[name]
        print(f"{name}: {m['wall_s']:.1f} s, peak tree RSS {m['peak_tree_rss_gb']:.2f} GiB, "
              f"CPU {m['cpu_s']:.1f} s; plan {result['plans'][name]}")
    print(f"\nresults: {workdir / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
