"""CT-vs-MR embedding divergence after pre-training with and without the density-matching term.

Runs on the generated example data (CT training cases, MR cases in imagesTs): plans and
preprocesses it, pre-trains the Swin-DIM encoder twice from the same seed, once with the plan's
density-matching weight and once with weight 0, and measures the sliced-KDE Jensen-Shannon
divergence between pooled CT and MR bottleneck embeddings of fixed, un-augmented crops
(0 = indistinguishable, ln 2 = 0.693 = disjoint). A randomly initialised encoder is the baseline.

    .venv/bin/python benchmarks/invariance.py --iterations 100 --weight 0.1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from swinfuse_auto.api import plan_and_preprocess
from swinfuse_auto.data.pretraining_data import build_pool
from swinfuse_auto.evaluation.invariance import (fixed_crops, load_encoder_network,
                                                 modality_divergence)
from swinfuse_auto.example_data import generate_example_dataset
from swinfuse_auto.networks.swin import SwinEncoder
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore
from swinfuse_auto.training.adaptation import ENCODER_FILE
from trainers.pretrain import PretrainTrainer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="bench_output/invariance")
    parser.add_argument("--iterations", type=int, default=100, help="pre-training steps per run")
    parser.add_argument("--weight", type=float, default=None,
                        help="density-matching weight of the 'with' run (default: the plan's)")
    parser.add_argument("--crops", type=int, default=8, help="evaluation crops per modality")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def pretrain_once(plan, stores, output: Path, iterations: int, seed: int) -> float:
    config = dataclasses.replace(PretrainTrainer.default_config(), seed=seed, num_workers=1)
    start = time.perf_counter()
    PretrainTrainer(plan, stores, output, config, iterations, "auto").run(resume=False)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    work = Path(args.workdir).resolve()
    raw = work / "raw"
    if not (raw / "Dataset990_SwinfuseExample" / "dataset.json").exists():
        generate_example_dataset(raw, ct_cases=8, mr_cases=4, seed=args.seed, overwrite=True)
    result = plan_and_preprocess(raw / "Dataset990_SwinfuseExample",
                                 preprocessed=str(work / "preprocessed"), num_processes=2)
    plan = result.plan
    stores = [CaseStore(result.preprocessed_dir / LABELLED_FOLDER),
              CaseStore(result.preprocessed_dir / UNLABELLED_FOLDER)]
    weight = plan.pretraining.density_matching_weight if args.weight is None else args.weight
    crops, codes = fixed_crops(build_pool(stores), plan.configuration.patch_size, args.crops,
                               seed=args.seed + 1)
    torch.manual_seed(args.seed)
    encoder_arch = dataclasses.replace(plan.architecture, in_channels=1)
    rows = {"random init": (modality_divergence(SwinEncoder(encoder_arch).eval(), crops, codes),
                            0.0)}
    for name, w in ((f"with density matching (w={weight})", weight), ("without (w=0)", 0.0)):
        run_plan = dataclasses.replace(plan, pretraining=dataclasses.replace(
            plan.pretraining, density_matching_weight=w))
        folder = work / f"pretrain_w{w}"
        seconds = pretrain_once(run_plan, stores, folder, args.iterations, args.seed)
        encoder = load_encoder_network(folder / ENCODER_FILE)
        rows[name] = (modality_divergence(encoder, crops, codes), seconds)
    print(f"CT-vs-MR embedding JSD (sliced KDE, {args.crops} crops per modality, "
          f"{args.iterations} pre-training iterations, patch {list(plan.configuration.patch_size)}, "
          f"feature size {plan.architecture.feature_size})")
    for name, (divergence, seconds) in rows.items():
        print(f"  {name:<40} JSD {divergence:.4f}   ({seconds:.0f} s)")
    (work / "results.json").write_text(json.dumps(
        {k: {"jsd": v[0], "seconds": v[1]} for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
