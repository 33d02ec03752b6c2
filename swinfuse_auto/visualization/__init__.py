"""Pictures a user looks at: training curves and segmentation overlays (Pillow, no matplotlib)."""
