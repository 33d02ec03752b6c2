"""The choices of ``predict``'s speed settings, without torch, so the command's parser can list
them (``--help``) before torch is imported."""

from __future__ import annotations

#: ``"window"`` (the default): patch-sized windows, as the network saw in training; ``"auto"``:
#: larger tiles within the memory budget (:func:`.tiling.plan_tiles`), faster but not the same
#: segmentation.
TILINGS = ("window", "auto")
#: ``"auto"``: measured on a CPU, bf16 where supported on a GPU (:mod:`.calibration`).
PRECISIONS = ("auto", "fp32", "bf16")
