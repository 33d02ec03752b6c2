"""Image and label reading/writing with their physical geometry."""

from swinfuse_auto.io.image import Geometry, read_image, read_geometry, write_image

__all__ = ["Geometry", "read_image", "read_geometry", "write_image"]
