"""Tuberculosis-labelled frontal chest X-rays (the 'extra' set redistributed with TBX11K).

Expected layout::

    root/
      labels.csv            image_id,source,tb,width,height   (source: shenzhen | montgomery | da_db; tb: 1 or 0)
      images/<image_id>.png 8-bit grayscale, width x height as in labels.csv

One study per image; the data says each image is one patient. Shenzhen and Montgomery images keep the original
file names (``CHNCXR_0002_0``), and those patients also appear in other sources (the Shenzhen lung-mask set, the
original NLM sets), so their patient id is the shared ``shenzhen:CHNCXR_0002`` / ``montgomery:MCUCXR_0004``
(`cxrvlm.sources._common.nlm_patient_id`) and patient-level splits keep every copy together. DA/DB images get
``da_db:<image_id>``.

Labels: ``Tuberculosis`` = tb. ``No Finding`` = 1 for tb = 0 and 0 for tb = 1: the "normal" class of these screening
sets is a radiograph read as normal (not merely TB-negative), and tuberculosis is itself a finding.
View position is None: the images are frontal, but the files do not say PA or AP (None counts as frontal).
``meta["dataset"]`` is the ``source`` column.

Citation:
    Liu Y, Wu Y-H, Ban Y, Wang H, Cheng M-M. Rethinking computer-aided tuberculosis diagnosis. CVPR 2020.
    Jaeger S, Candemir S, Antani S, et al. Two public chest X-ray datasets for computer-aided screening of pulmonary
    diseases. Quant Imaging Med Surg 2014;4(6):475-477. (Shenzhen and Montgomery County sets, U.S. NLM)
    Chauhan A, Chauhan D, Rout C. Role of Gist and PHOG features in computer-aided diagnosis of tuberculosis
    without segmentation. PLoS ONE 2014;9(11):e112980. (DA and DB sets)
Licence: for research use (NLM sets: public, free for research; TBX11K redistribution: research use only).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from cxrvlm.records import Study, View
from cxrvlm.sources._common import find_image, nlm_patient_id, parse_label, read_csv
from cxrvlm.sources.base import Source, register_source


@register_source
class TBSource(Source):
    name = "tb"
    licence = "research use only (Shenzhen/Montgomery: U.S. NLM; DA/DB: Chauhan et al.; redistributed by TBX11K)"
    citation = (
        "Liu et al., Rethinking computer-aided tuberculosis diagnosis, CVPR 2020; Jaeger et al., Quant Imaging Med "
        "Surg 2014;4(6):475-477; Chauhan et al., PLoS ONE 2014;9(11):e112980"
    )

    def _studies(self) -> Iterator[Study]:
        labels_csv = self.require("labels.csv")
        images = self.require("images")
        for line, row in read_csv(labels_csv, required=("image_id", "source", "tb", "width", "height")):
            item = f"labels.csv line {line} ({row['image_id'] or 'no image_id'})"
            try:
                study = self._study(row, images)
            except ValueError as e:
                self.skip(item, str(e))
                continue
            yield study

    def _study(self, row: dict[str, str], images: Path) -> Study:
        """One row -> one single-view study; ValueError saying why the row is unusable."""
        image_id = row["image_id"]
        if not image_id:
            raise ValueError("empty image_id")
        tb = parse_label(row["tb"], "tb")
        if tb != tb:  # NaN: an unlabelled row is of no use in a labelled set
            raise ValueError(f"tb {row['tb']!r} is not 1 or 0")
        try:
            size = (int(row["height"]), int(row["width"]))
        except ValueError:
            raise ValueError(f"width/height {row['width']!r}/{row['height']!r} are not integers") from None
        path = find_image(images, image_id)
        if path is None:
            raise ValueError(f"image {image_id}.png not found in {images}")
        dataset = row["source"] or "unknown"
        patient = nlm_patient_id(image_id) or f"{dataset}:{image_id}"
        view = View(image_id=image_id, path=str(path), view_position=None, size=size)
        return Study(
            study_id=f"tb:{image_id}", patient_id=patient, source=self.name, licence=self.licence, views=[view],
            labels={"Tuberculosis": tb, "No Finding": 1.0 - tb}, meta={"dataset": dataset},
        )
