"""Reading chest X-ray files: PNG, JPEG, 8/16-bit PNG and TIFF, DICOM -> float32 (H, W) in [0, 1] + metadata.

    from cxrvlm.io import read_image
    image = read_image("cxr.dcm")      # XrayImage: .pixels (H, W) float32, .meta ImageMeta
"""
from cxrvlm.io.image import IMAGE_FORMATS, ImageMeta, ImageReadError, XrayImage
from cxrvlm.io.read import DEFAULT_MAX_PIXELS, probe_image, read_image
from cxrvlm.io.transforms import block_mean, resize_to, to_uint8

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_FORMATS",
    "ImageMeta",
    "ImageReadError",
    "XrayImage",
    "block_mean",
    "probe_image",
    "read_image",
    "resize_to",
    "to_uint8",
]
