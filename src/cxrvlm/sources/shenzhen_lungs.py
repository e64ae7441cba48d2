"""Shenzhen chest X-rays with manual lung masks, at the original aspect ratio.

Expected layout::

    root/
      images/<id>.png   grayscale CXR, e.g. CHNCXR_0002_0.png
      masks/<id>.png    binary lung mask of the same size (255 = lung, both lungs in one mask)

One study per image, one frontal view with the mask ``{"lungs": path}``. An image without a mask is kept (it is
still a labelled radiograph) and has no mask; a mask without an image is reported as skipped.

Labels come from the Shenzhen file-name suffix: ``_1`` = tuberculosis, ``_0`` = normal (the original set's
convention), giving ``Tuberculosis`` and ``No Finding`` as in the `tb` source; a name without the suffix has no
labels. The patient id ``shenzhen:CHNCXR_0002`` is the one the `tb` source gives the same patient's resized copy,
so patient-level splits keep both together. View position is None (frontal; PA/AP is not stated in the files).

Citation:
    Jaeger S, Candemir S, Antani S, et al. Two public chest X-ray datasets for computer-aided screening of pulmonary
    diseases. Quant Imaging Med Surg 2014;4(6):475-477.
    Stirenko S, Kochura Y, Alienin O, et al. Chest X-ray analysis of tuberculosis by deep learning with segmentation
    and augmentation. IEEE ELNANO 2018. (the public manual lung masks of the Shenzhen set)
Licence: U.S. National Library of Medicine; public, free for research use (cite the paper above).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from cxrvlm.records import Study, View
from cxrvlm.sources._common import LUNGS, IMAGE_EXTENSIONS, find_image, image_size, nlm_patient_id, nlm_tb_label
from cxrvlm.sources.base import Source, register_source


@register_source
class ShenzhenLungsSource(Source):
    name = "shenzhen_lungs"
    licence = "public, research use (U.S. National Library of Medicine)"
    citation = (
        "Jaeger et al., Two public chest X-ray datasets for computer-aided screening of pulmonary diseases, "
        "Quant Imaging Med Surg 2014;4(6):475-477; masks: Stirenko et al., IEEE ELNANO 2018"
    )

    def _studies(self) -> Iterator[Study]:
        images = self.require("images")
        masks = self.require("masks")
        image_files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        stems = {p.stem for p in image_files}
        for mask in sorted(masks.iterdir()):
            if mask.suffix.lower() in IMAGE_EXTENSIONS and mask.stem not in stems:
                self.skip(f"masks/{mask.name}", "mask without an image in images/")
        for path in image_files:
            try:
                yield self._study(path, find_image(masks, path.stem))
            except ValueError as e:
                self.skip(f"images/{path.name}", str(e))

    def _study(self, path: Path, mask: Path | None) -> Study:
        """One image (+ its mask) -> one single-view study; ValueError when the image or mask is unusable."""
        size = image_size(path)
        view = View(image_id=path.stem, path=str(path), view_position=None, size=size)
        if mask is not None:
            mask_size = image_size(mask)
            if mask_size != size:
                raise ValueError(f"mask {mask.name} is {mask_size[1]}x{mask_size[0]}, image is {size[1]}x{size[0]}")
            view.masks[LUNGS] = str(mask)
        tb = nlm_tb_label(path.stem)
        labels = {} if math.isnan(tb) else {"Tuberculosis": tb, "No Finding": 1.0 - tb}
        return Study(
            study_id=f"shenzhen_lungs:{path.stem}", patient_id=nlm_patient_id(path.stem) or f"shenzhen:{path.stem}",
            source=self.name, licence=self.licence, views=[view], labels=labels,
        )
