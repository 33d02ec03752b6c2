"""swinfuse_auto: a self-configuring Swin-DIM (SwinFUSE) segmentation pipeline for CT and MRI.

The core package never imports ``planners`` or ``trainers`` directly: those plug-in packages are
found through :mod:`swinfuse_auto.registry` so that users can add their own without editing the core.
"""

__version__ = "0.1.0"
