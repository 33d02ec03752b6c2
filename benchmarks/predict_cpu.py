"""Benchmark: CPU inference, our ``predict`` against nnU-Net v2.8.1's ``nnUNetv2_predict``.

What is measured, and why:

* The volumes: the two chest CTs of ``../shared/data/Dataset902_RadiomicsLungCT`` (``lung1``,
  512 x 512 x 48, and ``lung2``, 512 x 512 x 61, 5.0 x 0.6 x 0.6 mm) and one generated CT of
  512 x 512 x 200 voxels of 0.7 x 0.7 x 2.5 mm, int16 Hounsfield units as scanners write them
  (``--generated-shape`` makes it smaller, to check the script in minutes). Every run predicts
  one case, from a folder holding only that case, so each figure belongs to one volume.
* Each tool predicts with the network its own planner chooses for the dataset, as a user gets
  it. Ours: the plans.json that ``plan_and_preprocess`` writes for the CPU (``plan_dataset``:
  prediction does not read the preprocessed cases, so they are not written). nnU-Net:
  ``nnUNetv2_plan_and_preprocess -c 3d_fullres --no_pp`` (fingerprint and plans only). Both
  models hold random weights of that network in the tool's own trained-model format, one fold
  (nnU-Net's checkpoint has the keys ``nnUNetPredictor.initialize_from_trained_model_folder``
  reads): the time does not depend on the weights.
* Both commands run with their defaults, TTA on (8 mirrored passes per window), and again
  without TTA (``--no-tta``; ``--disable_tta``), on the CPU (``--device cpu``; ``-device
  cpu``), each in a fresh process: ``predict -d DATASET`` and ``nnUNetv2_predict -d ID -c
  3d_fullres -f 0``.
* Both use ``--threads`` torch threads (default: the cores this process may use, affinity and
  cgroup quota included). Ours takes ``--threads``. nnU-Net's CLI sets as many as
  ``multiprocessing.cpu_count()``, every core of the machine; where that differs, its own entry
  point is started with ``cpu_count`` returning ``--threads`` instead. With fewer threads than
  usable cores, the benchmark pins itself, and so both tools with all their worker processes,
  to the first ``--threads`` cores. ``OMP_NUM_THREADS`` is ``--threads`` for both (their worker
  processes). The output says which of these applied.
* Our estimate: ``predict --dry-run`` with the same flags, before each measured run; its error
  is max(estimate / measured, measured / estimate). The dry run also makes the one-off
  precision measurement (cached in ``WORKDIR/cache``), so the measured run does not pay for it,
  as no run after a user's first does.
* Per run: wall time of the command, start to end; CPU time of the process tree; peak memory,
  the largest sum of RSS over the process and its descendants, sampled every 0.2 s (nnU-Net
  starts preprocessing and export workers; the sustained peak, held for 3 samples, is in the
  JSON).
* ``--time-limit-minutes``: nnU-Net with TTA takes about 56 minutes on lung1 with 2 cores, and
  hours on the 512 x 512 x 200 CT. A run that reaches the limit is stopped (its whole process
  group) and its wall time extrapolated from the progress bar of its sliding window (both tools
  draw ``k/N`` windows per case): the time at window k plus N - k times the time per window
  since the first window (which includes the warm-up). The work after the last window
  (resampling back, writing) is left out, so an extrapolated time is a little low. Extrapolated
  figures, and the ratios and errors computed from them, are marked ``~``; a run stopped before
  its first window shows ``>`` its limit. CPU time of a stopped run counts its main process up
  to the stop.
* Targets: ours at most 0.5 x nnU-Net's wall time with TTA on; ours without TTA at most 60 s on
  lung1 (2 cores); our estimate within a factor of 1.5.

Results go to ``WORKDIR/results.json`` (every run, with its command and log) and a table. The
generated CT, the plans and both models are cached in ``WORKDIR``. Run with the benchmark
environment (nnU-Net is only there), on an otherwise idle machine::

    .bench-venv/bin/python benchmarks/predict_cpu.py --time-limit-minutes 15

and, to check the script in a few minutes::

    .bench-venv/bin/python benchmarks/predict_cpu.py --cases generated \\
        --generated-shape 48x160x160 --tta off --threads 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench_common import GB, generated_ct, run_sampled, untrained_models

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_NAME, REAL_ID, REAL_CASES = "Dataset902_RadiomicsLungCT", 902, ("lung1", "lung2")
GENERATED_NAME, GENERATED_ID, GENERATED_CASE = "Dataset993_PredictCpuBench", 993, "generated"
GENERATED_SPACING = (2.5, 0.7, 0.7)
CASES, TOOLS, TTA = (*REAL_CASES, GENERATED_CASE), ("ours", "nnunet"), ("on", "off")
NNUNET_CONFIGURATION = "3d_fullres"
NNUNET_MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"
#: nnU-Net's trainer mirrors a 3D network along all three axes in training, so its TTA does too.
NNUNET_MIRROR_AXES = (0, 1, 2)
#: nnUNetv2_predict's own entry point with ``multiprocessing.cpu_count()`` (its CPU thread count)
#: replaced by the first argument: the same threads as ours where the machine has more cores.
NNUNET_WITH_THREADS = ("import multiprocessing, sys; threads = int(sys.argv.pop(1)); "
                       "multiprocessing.cpu_count = lambda: threads; "
                       "from nnunetv2.inference.predict_from_raw_data import predict_entry_point; "
                       "sys.exit(predict_entry_point())")
TARGET_RATIO, TARGET_ESTIMATE_FACTOR, TARGET_LUNG1_NO_TTA_S = 0.5, 1.5, 60.0
INTERVAL_S = 0.2
BIN = Path(sys.executable).parent


# -- datasets, cases and models -----------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """A raw dataset, and the folder of all the benchmark derives from it (plans, models)."""

    name: str
    id: int
    raw_root: Path
    work: Path

    @property
    def raw_dir(self) -> Path:
        return self.raw_root / self.name

    def env(self) -> dict[str, str]:
        """Both tools' roots, so that ``-d`` finds the dataset and its model."""
        ours, nnunet = self.work / "ours", self.work / "nnunet"
        return {"SWINFUSE_RAW": str(self.raw_root),
                "SWINFUSE_PREPROCESSED": str(ours / "preprocessed"),
                "SWINFUSE_RESULTS": str(ours / "results"), "nnUNet_raw": str(self.raw_root),
                "nnUNet_preprocessed": str(nnunet / "preprocessed"),
                "nnUNet_results": str(nnunet / "results")}


@dataclass(frozen=True)
class Case:
    """One volume to predict."""

    name: str
    dataset: Dataset
    image: Path

    def input_dir(self) -> Path:
        """A folder holding only this case (a link to its image, ``NAME_0000.nii.gz``)."""
        folder = self.dataset.work / "inputs" / self.name
        link = folder / f"{self.name}_0000.nii.gz"
        if not link.exists():
            folder.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.image.resolve())
        return folder


def load_cases(args: argparse.Namespace) -> list[Case]:
    """The cases asked for; the generated CT is written first if it is not cached."""
    cases = []
    real = Dataset(REAL_NAME, REAL_ID, args.real_data, args.workdir / REAL_NAME)
    for name in REAL_CASES:
        if name in args.cases:
            cases.append(Case(name, real, real.raw_dir / "imagesTr" / f"{name}_0000.nii.gz"))
    if GENERATED_CASE in args.cases:
        shape = args.generated_shape
        work = args.workdir / f"generated_{'x'.join(map(str, shape))}"
        generated = Dataset(GENERATED_NAME, GENERATED_ID, work / "raw", work)
        raw_dir = generated_ct(generated.raw_root, GENERATED_NAME, shape, GENERATED_SPACING)
        cases.append(Case(GENERATED_CASE, generated, raw_dir / "imagesTr" / "ct_000_0000.nii.gz"))
    return cases


def prepare_ours(dataset: Dataset) -> dict:
    """Our CPU plan of the dataset and a random-weights model of its network (both cached);
    the plan's patch, spacing and feature size."""
    from swinfuse_auto.api import plan_dataset
    from swinfuse_auto.paths import FINAL_CHECKPOINT, model_folder_name
    from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_TRAINER

    model_dir = (dataset.work / "ours" / "results" / dataset.name /
                 model_folder_name(DEFAULT_TRAINER, DEFAULT_PLANNER))
    if not (model_dir / "fold_0" / FINAL_CHECKPOINT).exists():
        plan = plan_dataset(dataset.raw_dir, device="cpu",
                            preprocessed=str(dataset.work / "ours" / "preprocessed")).plan
        dataset_json = json.loads((dataset.raw_dir / "dataset.json").read_text())
        untrained_models().write_untrained_model(model_dir, plan, dataset_json, (0,))
    plan = json.loads((model_dir / "plans.json").read_text())
    return {"patch_size": plan["configuration"]["patch_size"],
            "spacing": plan["configuration"]["spacing"],
            "network": f"Swin UNETR, feature size {plan['architecture']['feature_size']}"}


def prepare_nnunet(dataset: Dataset, processes: int) -> dict:
    """nnU-Net's 3d_fullres plan of the dataset and a random-weights model of its network
    (both cached); the plan's patch, spacing and network."""
    model_dir = dataset.work / "nnunet" / "results" / dataset.name / NNUNET_MODEL
    plans = dataset.work / "nnunet" / "preprocessed" / dataset.name / "nnUNetPlans.json"
    if not (model_dir / "fold_0" / "checkpoint_final.pth").exists():
        if not plans.exists():
            plan_nnunet(dataset, processes)
        write_nnunet_model(plans, dataset.raw_dir / "dataset.json", model_dir)
    configuration = json.loads(plans.read_text())["configurations"][NNUNET_CONFIGURATION]
    return {"patch_size": configuration["patch_size"], "spacing": configuration["spacing"],
            "network": configuration["architecture"]["network_class_name"].rsplit(".", 1)[-1]}


def plan_nnunet(dataset: Dataset, processes: int) -> None:
    """Fingerprint and plans only (``--no_pp``): prediction needs no preprocessed cases."""
    log = dataset.work / "nnunet" / "plan_log.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(dataset.id), "-c",
               NNUNET_CONFIGURATION, "--no_pp", "-npfp", str(processes)]
    with log.open("w") as out:
        done = subprocess.run(command, env={**os.environ, **dataset.env()}, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed (rc {done.returncode}); see {log}")


def write_nnunet_model(plans_file: Path, dataset_json_file: Path, model_dir: Path) -> None:
    """plans.json, dataset.json and ``fold_0/checkpoint_final.pth`` holding the untrained network
    of the plan, with the keys ``initialize_from_trained_model_folder`` reads: weights, trainer
    name, configuration, mirroring axes. The checkpoint is written last (its presence means a
    whole model)."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_json = json.loads(dataset_json_file.read_text())
    manager = PlansManager(json.loads(plans_file.read_text()))
    configuration = manager.get_configuration(NNUNET_CONFIGURATION)
    torch.manual_seed(0)
    network = nnUNetTrainer.build_network_architecture(
        manager, configuration, determine_num_input_channels(manager, configuration, dataset_json),
        manager.get_label_manager(dataset_json).num_segmentation_heads,
        enable_deep_supervision=False)
    (model_dir / "fold_0").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plans_file, model_dir / "plans.json")
    shutil.copyfile(dataset_json_file, model_dir / "dataset.json")
    checkpoint = model_dir / "fold_0" / "checkpoint_final.pth"
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": NNUNET_CONFIGURATION, "fold": 0},
                "inference_allowed_mirroring_axes": NNUNET_MIRROR_AXES},
               checkpoint.with_suffix(".partial"))
    os.replace(checkpoint.with_suffix(".partial"), checkpoint)


# -- one run ------------------------------------------------------------------------------------
#: A figure and how it was obtained: "" measured, "~" extrapolated, ">" or "<" a bound.
Figure = tuple[float, str]


@dataclass
class ToolRun:
    """One command on one case: what it cost, and how far it got when stopped."""

    tool: str
    case: str
    tta: bool
    command: str
    log: str
    returncode: int
    stopped: bool  # reached the time limit and was killed
    wall_s: float
    cpu_s: float
    peak_rss_gb: float
    sustained_rss_gb: float
    max_processes: int
    windows: list[int] | None  # [done, total] of the last progress seen
    extrapolated_s: float | None
    estimate_s: float | None = None  # ours: predict --dry-run

    @property
    def timing(self) -> Figure | None:
        """The wall time to judge: measured, extrapolated ("~"), or at least the limit of a run
        stopped before its first window (">"); None for a failed run."""
        if self.stopped:
            if self.extrapolated_s is None:
                return self.wall_s, ">"
            return self.extrapolated_s, "~"
        return (self.wall_s, "") if self.returncode == 0 else None


@dataclass
class Observation:
    """A progress bar line: windows done of total, seconds since the bar started."""

    done: int
    total: int
    elapsed_s: float


@dataclass
class WindowProgress:
    """The sliding window's progress, read from a tool's log as the tool writes it.

    Both draw one tqdm bar per case over its windows: nnU-Net's untitled (`` 44%|####  | 12/27
    [00:10<00:13, 1.2it/s]``), ours titled with the case id (``lung1: 44%|...``). The bar's
    start on the benchmark's clock is the earliest (time seen - tqdm's elapsed time): a line is
    seen after it is written, never before. The first line with a finished window and the latest
    give the time per window without the warm-up.
    """

    log: Path
    title: str
    offset: int = 0
    pending: str = ""
    first: Observation | None = None
    last: Observation | None = None
    bar_start_s: float = float("inf")
    pattern: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        prefix = rf"{re.escape(self.title)}: *" if self.title else ""
        self.pattern = re.compile(rf"\s*{prefix}\d+%\|[^|]*\| *(\d+)/(\d+) \[([\d:]+)<")

    def poll(self, now_s: float) -> None:
        """Read what was written since the last call."""
        with self.log.open("rb") as log:
            log.seek(self.offset)
            text = self.pending + log.read().decode(errors="replace")
            self.offset = log.tell()
        *segments, self.pending = re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text))
        for segment in [*segments, self.pending]:  # tqdm ends a bar line only with the next one
            match = self.pattern.match(segment)
            if match:
                done, total, elapsed = match.groups()
                line = Observation(int(done), int(total), _clock_seconds(elapsed))
                self.first = self.first or (line if line.done else None)
                self.last = line
                self.bar_start_s = min(self.bar_start_s, now_s - line.elapsed_s)

    def extrapolate(self) -> float | None:
        """Seconds from the command's start to its last window; None before the first."""
        first, last = self.first, self.last
        if first is None or last is None or not last.done:
            return None
        if last.done > first.done:
            per_window = (last.elapsed_s - first.elapsed_s) / (last.done - first.done)
        else:
            per_window = last.elapsed_s / last.done
        return self.bar_start_s + last.elapsed_s + (last.total - last.done) * per_window


def _clock_seconds(text: str) -> float:
    """tqdm's ``MM:SS`` or ``H:MM:SS`` in seconds."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def run_measured(command: list[str], env: dict[str, str], log: Path, title: str,
                 limit_s: float | None) -> dict:
    """Run ``command`` in a new process group, sampling its tree's memory and its progress
    every 0.2 s; at ``limit_s`` the group is killed. The ToolRun fields it measures."""
    progress = WindowProgress(log, title)
    run = run_sampled(command, env, log, INTERVAL_S, limit_s, progress.poll)
    progress.poll(run.wall_s)
    last = progress.last
    return {"command": shlex.join(command), "log": str(log), "returncode": run.returncode,
            "stopped": run.stopped, "wall_s": run.wall_s, "cpu_s": run.cpu_s,
            "peak_rss_gb": run.sampler.peak_rss / GB,
            "sustained_rss_gb": run.sampler.sustained / GB, "max_processes": run.sampler.most,
            "windows": [last.done, last.total] if last else None,
            "extrapolated_s": progress.extrapolate() if run.stopped else None}


@dataclass(frozen=True)
class Settings:
    """What every run shares."""

    workdir: Path
    threads: int
    limit_s: float | None

    def env(self, dataset: Dataset) -> dict[str, str]:
        return {**os.environ, **dataset.env(), "OMP_NUM_THREADS": str(self.threads),
                "SWINFUSE_CACHE": str(self.workdir / "cache"), "PYTHONUNBUFFERED": "1"}

    def output(self, tool: str, case: Case, tta: bool) -> Path:
        """An empty output folder (ours skips cases predicted before)."""
        folder = case.dataset.work / "outputs" / f"{tool}_{case.name}_tta-{'on' if tta else 'off'}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder


def measure_ours(case: Case, tta: bool, settings: Settings) -> ToolRun:
    """``predict`` with its defaults on the CPU; its ``--dry-run`` estimate first."""
    output = settings.output("ours", case, tta)
    command = [str(BIN / "predict"), "-i", str(case.input_dir()), "-o", str(output), "-d",
               case.dataset.name, "--device", "cpu", "--threads", str(settings.threads),
               *([] if tta else ["--no-tta"])]
    env = settings.env(case.dataset)
    estimate = dry_run_estimate(command, env)
    measured = run_measured(command, env, output.with_suffix(".log"), case.name,
                            settings.limit_s)
    return ToolRun("ours", case.name, tta, estimate_s=estimate, **measured)


def dry_run_estimate(command: list[str], env: dict[str, str]) -> float:
    """Seconds of ``predict --dry-run``'s ``estimated wall time: 3 min 05 s`` line."""
    done = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True,
                          check=False)
    match = re.search(r"^estimated wall time: (.+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"predict --dry-run gave no estimate (rc {done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    units = {"h": 3600, "min": 60, "s": 1}
    return float(sum(int(n) * units[unit]
                     for n, unit in re.findall(r"(\d+) (h|min|s)\b", match.group(1))))


def measure_nnunet(case: Case, tta: bool, settings: Settings) -> ToolRun:
    """``nnUNetv2_predict`` with its defaults on the CPU (with ``--threads`` torch threads)."""
    output = settings.output("nnunet", case, tta)
    arguments = ["-i", str(case.input_dir()), "-o", str(output), "-d", str(case.dataset.id),
                 "-c", NNUNET_CONFIGURATION, "-f", "0", "-device", "cpu",
                 *([] if tta else ["--disable_tta"])]
    if settings.threads == multiprocessing.cpu_count():
        command = [str(BIN / "nnUNetv2_predict"), *arguments]
    else:
        command = [sys.executable, "-c", NNUNET_WITH_THREADS, str(settings.threads), *arguments]
    measured = run_measured(command, settings.env(case.dataset), output.with_suffix(".log"), "",
                            settings.limit_s)
    return ToolRun("nnunet", case.name, tta, **measured)


MEASURE: dict[str, Callable[[Case, bool, Settings], ToolRun]] = {
    "ours": measure_ours, "nnunet": measure_nnunet}


# -- report -------------------------------------------------------------------------------------
def _text(figure: Figure | None, spec: str, unit: str = "") -> str:
    return "-" if figure is None else f"{figure[1]}{figure[0]:{spec}}{unit}"


def _ratio(ours: Figure | None, nnunet: Figure | None) -> Figure | None:
    """ours / nnU-Net, marked "~" when from an extrapolation and "<" or ">" when a bound (a run
    stopped before its first window); None where it says nothing."""
    if ours is None or nnunet is None or (ours[1] == ">" and nnunet[1] == ">"):
        return None
    mark = ("<" if nnunet[1] == ">" else ">" if ours[1] == ">"
            else "~" if "~" in (ours[1], nnunet[1]) else "")
    return ours[0] / nnunet[0], mark


def _verdict(figure: Figure | None, target: float) -> str:
    """PASS/FAIL against an upper target; "?" where a bound cannot tell."""
    if figure is None:
        return "-"
    passed = figure[0] <= target
    if (figure[1] == "<" and not passed) or (figure[1] == ">" and passed):
        return "?"
    return "PASS" if passed else "FAIL"


def _error(run: ToolRun | None) -> Figure | None:
    """Our estimate's error factor against the measured (or extrapolated) wall time."""
    if run is None or run.estimate_s is None or run.timing is None or run.timing[1] == ">":
        return None
    seconds, mark = run.timing
    return max(run.estimate_s / seconds, seconds / run.estimate_s), mark


def _cells(run: ToolRun | None) -> str:
    """Wall time, peak RSS and CPU time of a run."""
    if run is None:
        return f"{'-':>10}{'-':>10}{'-':>8}"
    wall = "FAILED" if run.timing is None else _text(run.timing, ".0f", " s")
    return f"{wall:>10}{run.peak_rss_gb:>10.2f}{run.cpu_s:>8.0f}"


def _row(case: str, tta: bool, ours: ToolRun | None, nnunet: ToolRun | None) -> str:
    ratio = _ratio(ours.timing, nnunet.timing) if ours and nnunet else None
    estimate = (ours.estimate_s, "") if ours and ours.estimate_s is not None else None
    error = _error(ours)
    return (f"{case:10}{'on' if tta else 'off':5}{_cells(ours)}{_cells(nnunet)}"
            f"{_text(ratio, '.2f'):>10}{_verdict(ratio, TARGET_RATIO) if tta else '':>6}"
            f"{_text(estimate, '.0f', ' s'):>10}{_text(error, '.2f', 'x'):>8}"
            f"{_verdict(error, TARGET_ESTIMATE_FACTOR):>8}")


def format_table(runs: list[ToolRun]) -> str:
    """One row per case and TTA setting, the lung1 target, then notes on stopped and failed
    runs."""
    by_key = {(r.tool, r.case, r.tta): r for r in runs}
    keys = sorted({(r.case, r.tta) for r in runs}, key=lambda k: (CASES.index(k[0]), not k[1]))
    lines = [f"{'':15}{'ours':>28}{'nnU-Net':>28}{'ours/nnU-Net':>16}{'our estimate':>26}",
             f"{'case':10}{'TTA':5}" + f"{'wall':>10}{'RSS GiB':>10}{'CPU s':>8}" * 2
             + f"{'ratio':>10}{f'<={TARGET_RATIO}':>6}{'dry run':>10}{'error':>8}"
             f"{f'<={TARGET_ESTIMATE_FACTOR}':>8}"]
    lines += [_row(case, tta, by_key.get(("ours", case, tta)), by_key.get(("nnunet", case, tta)))
              for case, tta in keys]
    lung1 = by_key.get(("ours", "lung1", False))
    if lung1 is not None:
        lines.append(f"\nours without TTA on lung1: {_text(lung1.timing, '.0f', ' s')} (target "
                     f"<= {TARGET_LUNG1_NO_TTA_S:.0f} s: "
                     f"{_verdict(lung1.timing, TARGET_LUNG1_NO_TTA_S)})")
    notes = [_note(r) for r in runs if r.stopped or r.timing is None]
    return "\n".join([*lines, *([""] if notes else []), *notes])


def _note(run: ToolRun) -> str:
    what = f"{run.tool} {run.case} TTA {'on' if run.tta else 'off'}"
    if not run.stopped:
        return f"{what}: FAILED (rc {run.returncode}); see {run.log}"
    if run.extrapolated_s is None:
        return f"{what}: stopped at the {run.wall_s:.0f} s limit before its first window"
    done, total = run.windows or (0, 0)
    return (f"{what}: stopped at the {run.wall_s:.0f} s limit; ~{run.extrapolated_s:.0f} s "
            f"extrapolated from {done}/{total} windows (without the resampling and writing "
            "after the last window)")


# -- main ---------------------------------------------------------------------------------------
def _comma_list(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"expected some of {','.join(allowed)}, got {text}")
        return values
    return parse


def _shape(text: str) -> tuple[int, int, int]:
    try:
        z, y, x = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ZxYxX, e.g. 200x512x512, got {text}") from None
    return z, y, x


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from swinfuse_auto.machine import usable_cpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench_output/predict_cpu"),
                        help="generated CT, plans, models, outputs, logs and results.json")
    parser.add_argument("--cases", type=_comma_list(CASES), default=list(CASES),
                        help=f"which volumes (default {','.join(CASES)})")
    parser.add_argument("--tta", type=_comma_list(TTA), default=list(TTA),
                        help="TTA settings to run (default on,off)")
    parser.add_argument("--tools", type=_comma_list(TOOLS), default=list(TOOLS),
                        help="which tools (default ours,nnunet)")
    parser.add_argument("--threads", type=int, default=usable_cpus(),
                        help="torch threads of both tools (default: the cores this process may "
                             "use, %(default)s here)")
    parser.add_argument("--time-limit-minutes", type=float, default=None, metavar="M",
                        help="stop a run after M minutes and extrapolate its wall time from its "
                             "progress (default: no limit)")
    parser.add_argument("--generated-shape", type=_shape, default=(200, 512, 512),
                        metavar="ZxYxX", help="voxels of the generated CT (default 200x512x512)")
    parser.add_argument("--real-data", type=Path, default=REAL_DATA,
                        help=f"the folder holding {REAL_NAME} (default ../shared/data)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    args.workdir = args.workdir.resolve()
    return args


def pin_cores(threads: int) -> list[int] | None:
    """With fewer threads than usable cores, keep this process, and so every tool it starts, on
    the first ``threads`` cores: worker processes cannot spread out where the threads cannot."""
    cores = sorted(os.sched_getaffinity(0))
    if threads >= len(cores):
        return None
    os.sched_setaffinity(0, cores[:threads])
    return cores[:threads]


def describe_setup(args: argparse.Namespace, pinned: list[int] | None) -> dict:
    cpu_model = next((line.split(":", 1)[1].strip()
                      for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "unknown")
    return {"threads": args.threads, "pinned_cores": pinned,
            "nnunet_cpu_count_replaced": args.threads != multiprocessing.cpu_count(),
            "machine_cores": multiprocessing.cpu_count(), "cpu": cpu_model,
            "time_limit_minutes": args.time_limit_minutes,
            "generated_shape": list(args.generated_shape),
            "load_at_start": [round(v, 2) for v in os.getloadavg()]}


def print_setup(setup: dict) -> None:
    threads, cores = setup["threads"], setup["machine_cores"]
    nnunet = (f"nnU-Net's cpu_count() replaced by {threads} (the machine has {cores} cores)"
              if setup["nnunet_cpu_count_replaced"] else f"nnU-Net's cpu_count() is {cores}")
    pinned = (f"pinned to cores {setup['pinned_cores']}" if setup["pinned_cores"]
              else "not pinned (as many threads as usable cores)")
    print(f"{threads} torch thread(s) in both tools, OMP_NUM_THREADS={threads}; {nnunet}; "
          f"{pinned}; {setup['cpu']}; load average {setup['load_at_start']}", flush=True)


def prepare(cases: list[Case], tools: list[str], threads: int) -> dict:
    """Plans and models of every dataset in ``cases``; each plan's patch, spacing, network."""
    plans: dict[str, dict] = {}
    for dataset in dict.fromkeys(case.dataset for case in cases):
        plans[dataset.name] = {}
        if "ours" in tools:
            plans[dataset.name]["ours"] = prepare_ours(dataset)
        if "nnunet" in tools:
            plans[dataset.name]["nnunet"] = prepare_nnunet(dataset, threads)
        for tool, plan in plans[dataset.name].items():
            print(f"{dataset.name} {tool}: {plan['network']}, patch {plan['patch_size']} at "
                  f"{[round(s, 3) for s in plan['spacing']]} mm", flush=True)
    return plans


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    setup = describe_setup(args, pin_cores(args.threads))
    print_setup(setup)
    cases = load_cases(args)
    plans = prepare(cases, args.tools, args.threads)
    limit = args.time_limit_minutes * 60 if args.time_limit_minutes is not None else None
    settings = Settings(args.workdir, args.threads, limit)
    runs: list[ToolRun] = []
    for case in cases:
        for tta in (value == "on" for value in args.tta):
            for tool in args.tools:
                run = MEASURE[tool](case, tta, settings)
                runs.append(run)
                print(f"{tool} {case.name} TTA {'on' if tta else 'off'}: "
                      f"{_text(run.timing, '.0f', ' s')}, peak RSS {run.peak_rss_gb:.2f} GiB, CPU "
                      f"{run.cpu_s:.0f} s, windows {run.windows}", flush=True)
                setup["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
                results = {"setup": setup, "plans": plans, "runs": [asdict(r) for r in runs]}
                (args.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{format_table(runs)}\n\nload average at start {setup['load_at_start']}, at end "
          f"{setup['load_at_end']}; results: {args.workdir / 'results.json'}")
    return 1 if any(r.timing is None for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
