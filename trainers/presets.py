"""Named presets of the fine-tuning recipe: dictionaries of ``--set`` values, not subclasses.

``train_fold --preset NAME`` applies one before the user's own ``--set`` values; without it, the
preset the plan names for its dataset (``finetuning_preset``, with the reason) is used.

* ``nnunet_intensity``: nnU-Net's augmentation plus GIN at 30%, on the plan's normalisation, no
  self-training: the recipe before the cross-modality work (rows (a)-(c) of benchmarks/ood.py).
* ``shape_over_intensity``: every image z-scored by its own statistics, class-aware
  location-scale curves (SLAug), GIN with IPA: intensity becomes an unreliable cue, shape a
  reliable one (row (d)).
* ``cross_modality``: ``shape_over_intensity`` plus self-training on the dataset's unlabelled
  images of another modality (row (e)).
* ``modality_independent``: ``nnunet_intensity`` with the network fed the MIND-SSC descriptor of
  the image instead of its intensities (``networks/input_features``; DG-TTA's GIN + MIND input):
  edges and their layout are what CT and MR share, intensities are not.
"""

from __future__ import annotations

from swinfuse_auto.registry import DEFAULT_TRAINER, TRAINER_PRESETS
from swinfuse_auto.training.config import TrainerPreset

FINETUNE = DEFAULT_TRAINER

NNUNET_INTENSITY = TrainerPreset(FINETUNE, {
    "input_scaling": "plan", "augmentation.gin_probability": 0.3,
    "augmentation.ipa_probability": 0.0, "augmentation.location_scale_probability": 0.0,
    "self_training": "off"},
    "nnU-Net's augmentation plus GIN, the plan's normalisation, no self-training")
SHAPE_OVER_INTENSITY = TrainerPreset(FINETUNE, {
    "input_scaling": "image_zscore", "augmentation.gin_probability": 0.3,
    "augmentation.ipa_probability": 0.5, "augmentation.location_scale_probability": 0.5,
    "augmentation.location_scale_class_aware_probability": 0.5, "self_training": "off"},
    "per-image z-score, class-aware location-scale curves, GIN with IPA")
CROSS_MODALITY = TrainerPreset(FINETUNE, {**SHAPE_OVER_INTENSITY.settings,
                                          "self_training": "auto"},
                               "shape_over_intensity plus self-training on the unlabelled images "
                               "of another modality")

MODALITY_INDEPENDENT = TrainerPreset(FINETUNE, {**NNUNET_INTENSITY.settings,
                                                "input_features": "mind_ssc"},
                                     "nnunet_intensity with the network fed the image's "
                                     "MIND-SSC descriptor instead of its intensities")

for _name, _preset in (("nnunet_intensity", NNUNET_INTENSITY),
                       ("modality_independent", MODALITY_INDEPENDENT),
                       ("shape_over_intensity", SHAPE_OVER_INTENSITY),
                       ("cross_modality", CROSS_MODALITY)):
    TRAINER_PRESETS.register(_name)(_preset)
