"""Built-in trainer recipes. Importing this package registers them in
:data:`swinfuse_auto.registry.TRAINERS`; third-party recipes register through the entry-point
group ``swinfuse_auto.trainers``."""

from trainers import finetune, presets, pretrain  # noqa: F401  (imported for registration)
