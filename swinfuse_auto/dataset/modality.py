"""Modality of a channel from its ``channel_names`` entry in dataset.json.

The modality picks the normalisation scheme and tags images for CT+MR pre-training, so the mapping
is generous: nnU-Net only knows "CT", but users write "T1", "t2w", "FLAIR", "ADC" or "MRI".
"""

from __future__ import annotations

import re
from enum import Enum


class Modality(str, Enum):
    CT = "CT"
    MR = "MR"
    OTHER = "other"


#: Integer codes of the modalities in tensors (batches, the density-matching loss).
MODALITY_INDEX: dict[Modality, int] = {Modality.CT: 0, Modality.MR: 1, Modality.OTHER: 2}

_MR_PATTERNS = (r"mri?", r"t1.*", r"t2.*", r"flair", r"adc", r"dwi", r"pd.*", r"swi",
                r"dti", r"dce", r"bold", r"mprage", r"space", r"stir", r"gre", r"tof", r"cine",
                r"lge", r"ssfp", r"bssfp", r"hbv", r"b\d+", r"dixon.*", r"water", r"fat")
_CT_PATTERNS = (r"ct", r"cta", r"cect", r"ncct", r"cbct", r"pet[_\- ]?ct", r"hu")


def modality_of(channel_name: str) -> Modality:
    """Map a channel name (case-insensitive) to CT, MR or other."""
    token = re.sub(r"[^a-z0-9]+", "_", channel_name.strip().lower()).strip("_")
    parts = [token, *token.split("_")]
    if any(re.fullmatch(p, part) for p in _CT_PATTERNS for part in parts):
        return Modality.CT
    if any(re.fullmatch(p, part) for p in _MR_PATTERNS for part in parts):
        return Modality.MR
    return Modality.OTHER
