"""CT-vs-MR embedding divergence after pre-training with and without the density-matching term.

Runs on the generated example data (CT training cases, MR cases in imagesTs): plans and
preprocesses it, pre-trains the Swin-DIM encoder twice from the same seed, once with the recipe's
density-matching weight and once with weight 0, and measures the sliced-KDE Jensen-Shannon
divergence between pooled CT and MR bottleneck embeddings of fixed, un-augmented crops
(0 = indistinguishable, ln 2 = 0.693 = disjoint). A randomly initialised encoder is the baseline.

    .venv/bin/python benchmarks/invariance.py --iterations 100 [--weight W]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from bench_common import example_workspace, pretrain_on
from swinfuse_auto.data.pretraining_data import build_pool
from swinfuse_auto.networks.swin import SwinEncoder
from swinfuse_auto.paths import ENCODER_FILE
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore
from swinfuse_auto.stages.invariance import fixed_crops, load_encoder_network, modality_divergence
from trainers.pretrain import PretrainTrainer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="bench_output/invariance")
    parser.add_argument("--iterations", type=int, default=100, help="pre-training steps per run")
    parser.add_argument("--weight", type=float, default=None,
                        help="density-matching weight of the 'with' run (default: the recipe's)")
    parser.add_argument("--crops", type=int, default=8, help="evaluation crops per modality")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    work = Path(args.workdir).resolve()
    _, result = example_workspace(work, ct_cases=8, mr_cases=4, seed=args.seed)
    plan = result.plan
    stores = [CaseStore(result.preprocessed_dir / LABELLED_FOLDER),
              CaseStore(result.preprocessed_dir / UNLABELLED_FOLDER)]
    recipe_weight = PretrainTrainer.default_config().density_matching_weight
    weight = recipe_weight if args.weight is None else args.weight
    crops, codes = fixed_crops(build_pool(stores), plan.pretraining.patch_size, args.crops,
                               seed=args.seed + 1)
    torch.manual_seed(args.seed)
    encoder_arch = dataclasses.replace(plan.architecture, in_channels=1)
    rows = {"random init": (modality_divergence(SwinEncoder(encoder_arch).eval(), crops, codes),
                            0.0)}
    for name, w in ((f"with density matching (w={weight})", weight), ("without (w=0)", 0.0)):
        folder = work / f"pretrain_w{w}_{args.iterations}"
        seconds = pretrain_on(plan, stores, folder, args.iterations, args.seed,
                              density_weight=w)
        encoder = load_encoder_network(folder / ENCODER_FILE)
        rows[name] = (modality_divergence(encoder, crops, codes), seconds)
    print(f"CT-vs-MR embedding JSD (sliced KDE, {args.crops} crops per modality, "
          f"{args.iterations} pre-training iterations, crop {list(plan.pretraining.patch_size)}, "
          f"feature size {plan.architecture.feature_size})")
    for name, (divergence, seconds) in rows.items():
        print(f"  {name:<40} JSD {divergence:.4f}   ({seconds:.0f} s)")
    (work / "results.json").write_text(json.dumps(
        {k: {"jsd": v[0], "seconds": v[1]} for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
