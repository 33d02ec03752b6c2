"""Why a model fine-tuned on CT segments (almost) nothing on MR: the figures behind the diagnosis.

On the generated example data (CT labelled for training, T1 MR of the same anatomy held out), a
CT model is fine-tuned with today's recipe (no pre-training, 24 x 20 steps at lr 3e-3, as
``benchmarks/ood.py`` row (a)), then:

1. input ranges: each tissue's mean intensity after the plan's normalisation, CT (dataset
   clip + z-score) against MR (per-image z-score), and the share of voxels at the CT clip floor;
2. GIN: how often one GIN draw (the training augmentation) puts the organs in MR's order, and
   how far it moves them (Spearman correlation of the organ means with CT's and with MR's);
3. intensity probe: the CT model on its own validation CT, unchanged, inverted, and remapped
   tissue by tissue to T1 values (the same anatomy and grid with MR contrast);
4. encoder features: organ centroids of the encoder's 1/4-scale features on CT, and how often
   the nearest CT centroid of an MR organ is the right organ;
5. pre-training terms: the plan's pre-training batch and crop before and after the fix, and
   the loss parts of a few steps when MR comes only through ``--extra``.

    .venv/bin/python benchmarks/ood_diagnosis.py --workdir bench_output/diagnosis
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from bench_common import DATASET, example_workspace
from swinfuse_auto import api
from swinfuse_auto.data.intensity_augmentation import apply_gin, draw_gin_network
from swinfuse_auto.dataset.case_reader import read_case
from swinfuse_auto.dataset.cases import held_out_cases, training_cases
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.evaluation.metrics import dice
from swinfuse_auto.example_data.anatomy import ORGAN_LABELS, Tissue
from swinfuse_auto.example_data.intensity import CT_HU, MR_CONTRASTS
from swinfuse_auto.inference.fold_ensemble import EnsemblePredictor, PredictionSettings
from swinfuse_auto.models.fold_model import load_fold_model
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.case import RawArrays, preprocess_arrays
from swinfuse_auto.preprocessing.runner import normalization_for

ORGANS = {v: k for k, v in ORGAN_LABELS.items()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="bench_output/diagnosis")
    parser.add_argument("--ct-cases", type=int, default=10)
    parser.add_argument("--mr-cases", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--iterations-per-epoch", type=int, default=20)
    parser.add_argument("--gin-draws", type=int, default=200)
    return parser.parse_args()


def preprocessed_case(case, spec, plan: Plan, remap=None, as_modality: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(data, seg) of a raw case at the plan's grid, optionally with its intensities remapped
    and normalised as ``as_modality``."""
    arrays = read_case(case, count_non_finite=False)
    images, label, geometry = arrays.images, arrays.label, arrays.geometry
    modalities = tuple(m.value for m in spec.modalities_for(case.case_id))
    if remap is not None:
        images = remap(images)
    if as_modality is not None:
        modalities = (as_modality,)
    data, seg, _, _ = preprocess_arrays(RawArrays(images, label), geometry, plan.configuration,
                                        normalization_for(plan, spec, modalities))
    return data, seg


def organ_means(data: np.ndarray, seg: np.ndarray) -> np.ndarray:
    return np.array([data[0][seg == label].mean() for label in sorted(ORGANS)])


def input_ranges(cases: dict, plan: Plan) -> list[str]:
    lines = ["1. input ranges after the plan's normalisation (mean of each organ; background "
             "percentiles 5/50/95)"]
    ct = plan.configuration.normalization[0].params
    for name, items in cases.items():
        means = np.mean([organ_means(d, s) for d, s in items], axis=0)
        background = np.concatenate([d[0][s == 0] for d, s in items])
        organs = ", ".join(f"{ORGANS[k]} {m:+.2f}" for k, m in zip(sorted(ORGANS), means))
        floor = np.mean([np.mean(d[0] <= d[0].min() + 1e-6) for d, _ in items])
        lines.append(f"   {name}: {organs}; background {np.percentile(background, 5):+.2f} / "
                     f"{np.percentile(background, 50):+.2f} / {np.percentile(background, 95):+.2f};"
                     f" voxels at the minimum {floor:.0%}")
    lines.append(f"   CT scheme: clip to [{ct['clip_low']:.0f}, {ct['clip_high']:.0f}] HU (0.5/99.5 "
                 "percentiles of labelled voxels), so fat, bowel and air share the floor value")
    return lines


ORGAN_TISSUES = (Tissue.LIVER, Tissue.SPLEEN, Tissue.KIDNEY, Tissue.BONE, Tissue.AORTA)


def gin_statistics(ct_items: list, draws: int) -> list[str]:
    """Spearman correlation of organ means after GIN with CT's order and with T1's / T2's."""
    orders = {name: np.array([table[t][0] for t in ORGAN_TISSUES])
              for name, table in MR_CONTRASTS.items()}
    rng = np.random.default_rng(0)
    with_ct, with_mr = [], {name: [] for name in orders}
    for i in range(draws):
        data, seg = ct_items[i % len(ct_items)]
        out = apply_gin(data[0], draw_gin_network(rng))
        means = organ_means(out[None], seg)
        with_ct.append(stats.spearmanr(means, organ_means(data, seg))[0])
        for name, order in orders.items():
            with_mr[name].append(stats.spearmanr(means, order)[0])
    with_ct_a = np.array(with_ct)
    lines = ["2. GIN (applied to 30% of training samples): Spearman of the 5 organ means after "
             f"one draw ({draws} draws)",
             f"   with CT's order: median {np.median(with_ct_a):+.2f}, share >= 0.9: "
             f"{np.mean(with_ct_a >= 0.9):.0%}, share <= -0.9 (inverted): "
             f"{np.mean(with_ct_a <= -0.9):.0%}"]
    for name, values in with_mr.items():
        lines.append(f"   with {name}'s order: median {np.median(values):+.2f}, share >= 0.7: "
                     f"{np.mean(np.array(values) >= 0.7):.0%}")
    return lines


def remapped_to(contrast: str):  # noqa: ANN201 (a remap function for preprocessed_case)
    """CT in HU -> ``contrast`` values by a piecewise-linear lookup through the tissue means."""
    points = sorted((CT_HU[t][0], MR_CONTRASTS[contrast][t][0]) for t in Tissue)
    hu, values = np.array(points).T

    def remap(images: np.ndarray) -> np.ndarray:
        return np.interp(images, hu, values).astype(np.float32)

    return remap


def dice_per_organ(ensemble: EnsemblePredictor, data: np.ndarray, seg: np.ndarray) -> np.ndarray:
    prediction = ensemble.predict(torch.from_numpy(data)).argmax(0).numpy()
    return np.array([dice(prediction, seg, k) for k in sorted(ORGANS)])


def probe(ensemble: EnsemblePredictor, cases: list, spec, plan: Plan) -> list[str]:
    remaps = {"unchanged": (None, None),
              "inverted (max + min - HU)": (lambda x: x.max() + x.min() - x, None),
              "tissue-wise T1 values (MR normalisation)": (remapped_to("T1"), "MR"),
              "tissue-wise T2 values (MR normalisation)": (remapped_to("T2"), "MR")}
    lines = ["3. intensity probe: the CT model on its validation CT (Dice per organ)"]
    for name, (remap, modality) in remaps.items():
        scores = np.mean([dice_per_organ(ensemble, *preprocessed_case(c, spec, plan, remap,
                                                                       modality))
                          for c in cases], axis=0)
        lines.append(f"   {name}: " + ", ".join(f"{ORGANS[k]} {s:.2f}"
                                               for k, s in zip(sorted(ORGANS), scores))
                     + f"; mean {scores.mean():.3f}")
    return lines


@torch.no_grad()
def organ_features(encoder: torch.nn.Module, data: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Mean 1/2-scale encoder feature per organ (rows; NaN for an organ absent at that scale),
    from the volume padded to a multiple of 32."""
    pad = [(0, 0)] + [(0, -s % 32) for s in data.shape[1:]]
    x = torch.from_numpy(np.pad(data, pad))[None]
    features = encoder(x)[1][0]  # (C, z/2, y/2, x/2)
    labels = torch.from_numpy(np.pad(seg, pad[1:]))[None, None].float()
    labels = torch.nn.functional.interpolate(labels, size=features.shape[1:], mode="nearest")[0, 0]
    return np.stack([features[:, labels == k].mean(1).numpy() if (labels == k).any()
                     else np.full(features.shape[0], np.nan) for k in sorted(ORGANS)])


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def feature_transfer(encoder: torch.nn.Module, ct: list, mr: list, name: str) -> list[str]:
    ct_features = np.stack([organ_features(encoder, d, s) for d, s in ct])
    mr_features = np.stack([organ_features(encoder, d, s) for d, s in mr])
    unit = _unit(np.nanmean(ct_features, axis=0))

    def accuracy(features: np.ndarray) -> float:
        similarity = _unit(features) @ unit.T  # (cases, organs, centroids)
        present = ~np.isnan(similarity).any(2)
        return float(np.mean(np.nan_to_num(similarity, nan=-2).argmax(2)[present]
                             == np.nonzero(present)[1]))

    cosines = (_unit(mr_features) * unit).sum(-1)
    same = float(np.nanmean(cosines))
    return [f"4. encoder (fine-tuned on CT) features at 1/2 scale, {name}: nearest CT organ "
            f"centroid; CT organs: {accuracy(ct_features):.0%} correct; {name} organs: "
            f"{accuracy(mr_features):.0%} correct (chance {1 / len(ORGANS):.0%}); cosine of an "
            f"MR organ with its CT centroid: {same:.2f}"]


def pretraining_terms(plan: Plan, roots: dict[str, str], work: Path) -> list[str]:
    """The plan's pre-training batch and crop, and the loss parts with MR only from --extra."""
    from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore
    from trainers.pretrain import PretrainTrainer

    pre = Path(roots["preprocessed"]) / DATASET
    trainer = PretrainTrainer(
        plan=plan, stores=[CaseStore(pre / LABELLED_FOLDER), CaseStore(pre / UNLABELLED_FOLDER)],
        output_dir=work / "pretrain_check",
        config=dataclasses.replace(PretrainTrainer.default_config(), num_workers=0,
                                   iterations_per_epoch=4),
        iterations=4, device="cpu")
    trainer.run()
    parts = {k: round(v, 3) for k, v in trainer.last_history[-1].items()
             if k in ("inpainting", "rotation", "contrastive", "density_matching")}
    return ["5. pre-training terms",
            f"   plan: {plan.pretraining.batch_size} crop pairs of {list(plan.pretraining.patch_size)}"
            f" per batch (fine-tuning patch {list(plan.configuration.patch_size)}); before the fix "
            "a CT dataset whose MR came through --extra got 1 pair and the fine-tuning patch",
            f"   4 steps on CT + MR now: {parts}"]


def main() -> None:
    args = parse_args()
    work = Path(args.workdir).resolve()
    roots, prepared = example_workspace(work, args.ct_cases, args.mr_cases, 0, "cpu")
    plan = prepared.plan
    fold_dir = api.train_fold(DATASET, 0, pretrain_choice="none", epochs=args.epochs,
                              iterations_per_epoch=args.iterations_per_epoch,
                              preset="nnunet_intensity",
                              config_overrides=["seed=0", "learning_rate=0.003"],
                              continue_training=True, device="cpu",
                              results=str(work / "results"), **roots)
    raw = Path(roots["raw"]) / DATASET
    spec = load_dataset_spec(raw)
    val_ids = json.loads((fold_dir / "validation" / "summary.json").read_text())["cases"].keys()
    ct_cases = [c for c in training_cases(raw, spec) if c.case_id in val_ids]
    mr_cases = list(held_out_cases(raw, spec))  # labels from labelsTs
    contrast = {c: names[0] for c, names in spec.case_channel_names.items()}
    ct_items = [preprocessed_case(c, spec, plan) for c in ct_cases]
    mr_items = {name: [preprocessed_case(c, spec, plan) for c in mr_cases
                       if contrast[c.case_id] == name] for name in ("T1", "T2")}
    fold = load_fold_model(fold_dir / "checkpoint_final.pt")
    network = fold.build_network("cpu")
    ensemble = EnsemblePredictor([network], plan, spec.raw, ["0"], torch.device("cpu"),
                                 PredictionSettings(mirror_axes=()))
    lines = input_ranges({"CT": ct_items, **{f"MR {k}": v for k, v in mr_items.items()}}, plan)
    lines += gin_statistics(ct_items, args.gin_draws)
    lines += probe(ensemble, ct_cases, spec, plan)
    for name, items in mr_items.items():
        scores = np.mean([dice_per_organ(ensemble, d, s) for d, s in items], axis=0)
        lines.append(f"   real {name} cases: " + ", ".join(
            f"{ORGANS[k]} {v:.2f}" for k, v in zip(sorted(ORGANS), scores))
            + f"; mean {scores.mean():.3f}")
    for name, items in mr_items.items():
        lines += feature_transfer(network.encoder, ct_items, items, name)
    lines += pretraining_terms(plan, roots, work)
    print("\n".join(lines))
    (work / "diagnosis.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
