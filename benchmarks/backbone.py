"""Training-step time, peak memory and parameters: our Swin UNETR vs MONAI's, and the DIM's cost.

Run with the benchmark environment (MONAI is never a dependency of swinfuse_auto)::

    .bench-venv/bin/python benchmarks/backbone.py [--features 12 24] [--size 64 64 64]

Peak memory is measured per configuration in fresh subprocesses (peak RSS increase over the RSS
after imports on a CPU, ``torch.cuda.max_memory_allocated`` on a GPU), so configurations cannot
pollute each other; glibc's allocator makes a CPU peak vary by up to ~30% between identical runs,
so each is measured twice and the table shows the lower and the higher figure. Step times are
measured in this process with the configurations interleaved round by round, so that load from
other processes on a shared machine hits all of them alike; the table reports the median (and
the minimum) over the rounds, and the CPU pressure (Linux PSI: share of time another task waited
for a CPU) before and after, to show how contended they were. ``--device cuda`` (or ``auto`` on
a machine with a GPU) repeats the comparison on the GPU with bf16 autocast.

Targets: ours without DIM <= 1.0x MONAI's step time; DIM <= 1.15x time and <= 1.10x parameters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from bench_common import process_memory_bytes

KINDS = ("monai", "none", "swin_dim")
LABELS = {"monai": "MONAI SwinUNETR", "none": "ours, no DIM", "swin_dim": "ours + DIM"}


def build_model(kind: str, feature_size: int, in_channels: int = 1, num_classes: int = 2
                ) -> torch.nn.Module:
    """MONAI's SwinUNETR or our Swin-DIM UNETR with the same depths, heads and window."""
    if kind == "monai":
        from monai.networks.nets import SwinUNETR
        return SwinUNETR(in_channels=in_channels, out_channels=num_classes,
                         feature_size=feature_size)
    from swinfuse_auto.networks.architecture import SwinArchitecture
    from swinfuse_auto.networks.factory import build_segmentation_network
    arch = SwinArchitecture(in_channels, num_classes, feature_size=feature_size, dim=kind)
    return build_segmentation_network(arch)


class Stepper:
    """One model, its AdamW and a fixed random batch: ``step()`` is one training step."""

    def __init__(self, kind: str, feature_size: int, shape: tuple[int, int, int], batch: int,
                 device: str, in_channels: int = 1, num_classes: int = 2) -> None:
        torch.manual_seed(0)
        self.device = device
        self.model = build_model(kind, feature_size, in_channels, num_classes).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.x = torch.randn(batch, in_channels, *shape, device=device)
        self.y = torch.randint(0, num_classes, (batch, *shape), device=device)

    def step(self) -> float:
        """Forward, backward and optimiser step (bf16 autocast on CUDA); returns wall seconds."""
        if self.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", torch.bfloat16, enabled=self.device == "cuda"):
            logits = self.model(self.x)
        loss = torch.nn.functional.cross_entropy(logits.float(), self.y)
        loss.backward()
        self.optimizer.step()
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def cpu_pressure() -> float:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI), or -1.

    On a machine shared with other jobs this says how far a timing can be trusted.
    """
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return -1.0


def wait_for_quiet(max_pressure: float, timeout: float = 300.0) -> float:
    """Sleep until CPU pressure drops below ``max_pressure`` (or ``timeout``); return it."""
    deadline = time.monotonic() + timeout
    pressure = cpu_pressure()
    while pressure > max_pressure and time.monotonic() < deadline:
        time.sleep(5.0)
        pressure = cpu_pressure()
    return pressure


def worker(config: dict[str, Any]) -> dict[str, Any]:
    """Measure one configuration in this (fresh) process: parameters, peak memory, step times."""
    device = config["device"]
    if config["kind"] == "monai":
        import monai.networks.nets  # noqa: F401  (import cost out of the baseline)
    else:
        import swinfuse_auto.networks.unetr  # noqa: F401
    baseline = process_memory_bytes("VmRSS")
    stepper = Stepper(config["kind"], config["feature_size"], tuple(config["shape"]),
                      config["batch"], device, config.get("in_channels", 1),
                      config.get("num_classes", 2))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu = [], []
    for i in range(config["warmup"] + config["steps"]):
        c0 = time.process_time()
        t = stepper.step()
        if i >= config["warmup"]:
            times.append(t)
            cpu.append(time.process_time() - c0)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = process_memory_bytes("VmHWM") - baseline
    params = sum(p.numel() for p in stepper.model.parameters())
    return {**config, "params": params, "peak_bytes": peak, "step_seconds": times,
            "cpu_seconds": cpu}


def run_isolated(config: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter and return its result."""
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(config)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved_times(configs: list[dict[str, Any]], rounds: int, warmup: int
                      ) -> list[list[float]]:
    """Step times of every configuration, one step of each per round."""
    steppers = [Stepper(c["kind"], c["feature_size"], tuple(c["shape"]), c["batch"], c["device"])
                for c in configs]
    for s in steppers:
        for _ in range(warmup):
            s.step()
    times: list[list[float]] = [[] for _ in steppers]
    for _ in range(rounds):
        for i, s in enumerate(steppers):
            times[i].append(s.step())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, nargs="+", default=[12, 24])
    parser.add_argument("--size", type=int, nargs=3, default=[64, 64, 64])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    devices = ["cpu"] + (["cuda"] if args.device in ("auto", "cuda")
                         and torch.cuda.is_available() else [])
    if args.device == "cuda":
        devices = devices[1:]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"crop {args.size}")
    for device in devices:
        for fs in args.features:
            report(device, fs, args)


def report(device: str, feature_size: int, args: argparse.Namespace) -> None:
    """Measure and print one table (three models at one feature size) with its ratios."""
    configs = [{"kind": k, "feature_size": feature_size, "shape": args.size,
                "batch": args.batch, "device": device, "warmup": 1, "steps": 1} for k in KINDS]
    repeats = 2 if device == "cpu" else 1
    isolated = [[run_isolated(c) for _ in range(repeats)] for c in configs]
    before = cpu_pressure()
    times = interleaved_times(configs, args.rounds, args.warmup)
    med = {c["kind"]: statistics.median(t) for c, t in zip(configs, times)}
    print(f"\n{device}, feature size {feature_size} (CPU pressure {before:.0f}% before, "
          f"{cpu_pressure():.0f}% after the timing):")
    print(f"  {'model':<18}{'params':>12}{'step med (s)':>14}{'step min (s)':>14}"
          f"{'peak (GB), 2 runs':>19}")
    for c, runs, t in zip(configs, isolated, times):
        peaks = sorted(r["peak_bytes"] / 1e9 for r in runs)
        print(f"  {LABELS[c['kind']]:<18}{runs[0]['params']:>12,}{med[c['kind']]:>14.3f}"
              f"{min(t):>14.3f}{' / '.join(f'{p:.2f}' for p in peaks):>19}")
    params = {runs[0]["kind"]: runs[0]["params"] for runs in isolated}
    peaks = {runs[0]["kind"]: min(r["peak_bytes"] for r in runs) for runs in isolated}
    print(f"  ours (no DIM) / MONAI: time {med['none'] / med['monai']:.2f}x (target <= 1.00), "
          f"lower peak memory {peaks['none'] / peaks['monai']:.2f}x")
    print(f"  DIM / no DIM: time {med['swin_dim'] / med['none']:.2f}x (target <= 1.15), "
          f"params {params['swin_dim'] / params['none']:.4f}x (target <= 1.10), "
          f"lower peak memory {peaks['swin_dim'] / peaks['none']:.2f}x")


if __name__ == "__main__":
    main()
