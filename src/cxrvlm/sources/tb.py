"""Tuberculosis-labelled frontal chest X-rays (the 'extra' set redistributed with TBX11K).

Expected layout::

    root/
      labels.csv            image_id,source,tb,width,height   (source: shenzhen | montgomery | da_db; tb: 1 or 0)
      images/<image_id>.png 8-bit grayscale, width x height as in labels.csv
      masks/<image_id>.png  optional; lung mask of the film (255 = lung, both lungs in one mask), same size
      lung_contours.json    optional; {"images": [{"image_id", "right_lung": [[x, y], ...], "left_lung": [...]}]}
                            closed polygons in pixels of the film (right = the patient's right, on the image left)

One study per image; the data says each image is one patient. Shenzhen and Montgomery images keep the original
file names (``CHNCXR_0002_0``), and those patients also appear in other sources (the Shenzhen lung-mask set, the
original NLM sets), so their patient id is the shared ``shenzhen:CHNCXR_0002`` / ``montgomery:MCUCXR_0004``
(`cxrvlm.sources._common.nlm_patient_id`) and patient-level splits keep every copy together. DA/DB images get
``da_db:<image_id>``.

Labels: ``Tuberculosis`` = tb. ``No Finding`` = 1 for tb = 0 and 0 for tb = 1: the "normal" class of these screening
sets is a radiograph read as normal (not merely TB-negative), and tuberculosis is itself a finding.
View position is None: the images are frontal, but the files do not say PA or AP (None counts as frontal).
``meta["dataset"]`` is the ``source`` column.

Lung masks (Shenzhen and Montgomery films): ``masks["lungs"]`` = ``masks/<image_id>.png``, one mask holding both
lungs, as the covid source gives them. That is the form every task reads: segmentation splits it into the right and
left lung by connected components (and also asks for the whole "lungs" or one lung), detection and grounding take
the two lungs' tight boxes from it, and the lung-size question compares their areas. On the real folder every one
of the 153 masks splits into exactly two components that match the JSON's right/left polygons (IoU >= 0.97), so
separate right/left masks would add nothing. A film with contours but no mask file gets its mask drawn from the two
polygons (in memory); a mask file of another size than the film, a mask or contour entry without a labels.csv row,
and a malformed contour entry are reported as skipped (the film stays, without a mask). A film without either is
not annotated: it has no mask, which is not "no lung".

Citation:
    Gaggion N, Mansilla L, Mosquera C, Milone DH, Ferrante E. Improving anatomical plausibility in medical image
    segmentation via hybrid graph neural networks: applications to chest X-ray analysis. IEEE TMI 2022. (lung
    contours and masks, "Chest-xray-landmark-dataset"; licence not stated, research use)
    Liu Y, Wu Y-H, Ban Y, Wang H, Cheng M-M. Rethinking computer-aided tuberculosis diagnosis. CVPR 2020.
    Jaeger S, Candemir S, Antani S, et al. Two public chest X-ray datasets for computer-aided screening of pulmonary
    diseases. Quant Imaging Med Surg 2014;4(6):475-477. (Shenzhen and Montgomery County sets, U.S. NLM)
    Chauhan A, Chauhan D, Rout C. Role of Gist and PHOG features in computer-aided diagnosis of tuberculosis
    without segmentation. PLoS ONE 2014;9(11):e112980. (DA and DB sets)
Licence: for research use (NLM sets: public, free for research; TBX11K redistribution: research use only).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cxrvlm.records import MaskRef, Study, View
from cxrvlm.sources._common import LUNGS, find_image, image_size, nlm_patient_id, parse_label, read_csv
from cxrvlm.sources.base import Source, register_source

_CONTOURS = "lung_contours.json"
_SIDES = ("right_lung", "left_lung")
Polygon = list[tuple[float, float]]


def draw_lungs(polygons: list[Polygon], size: tuple[int, int]) -> np.ndarray:
    """Closed polygons in pixels (x, y; pixel centres at integers) -> one bool (H, W) mask holding them all."""
    canvas = Image.new("L", (size[1], size[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        draw.polygon(polygon, fill=255)
    return np.asarray(canvas) > 127


def _polygon(points: Any, what: str) -> Polygon:
    """A JSON list of [x, y] pairs -> a polygon; ValueError naming `what` when it is not one."""
    try:
        polygon = [(float(x), float(y)) for x, y in points]
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a list of [x, y] points") from None
    if len(polygon) < 3:
        raise ValueError(f"{what} has {len(polygon)} points; a lung outline needs at least 3")
    return polygon


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
        contours = self._contours()
        listed: set[str] = set()
        for line, row in read_csv(labels_csv, required=("image_id", "source", "tb", "width", "height")):
            item = f"labels.csv line {line} ({row['image_id'] or 'no image_id'})"
            listed.add(row["image_id"])
            try:
                study = self._study(row, images)
            except ValueError as e:
                self.skip(item, str(e))
                continue
            self._attach_mask(study.views[0], contours.get(row["image_id"]))
            yield study
        self._report_unlisted(listed, contours)

    def _contours(self) -> dict[str, list[Polygon]]:
        """lung_contours.json -> image_id -> [right, left] polygons ({} without the file); bad entries skipped."""
        path = self.root / _CONTOURS
        if not path.is_file():
            return {}
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["images"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.skip(_CONTOURS, f"not readable as {{'images': [...]}} ({type(e).__name__}: {e})")
            return {}
        out: dict[str, list[Polygon]] = {}
        for i, entry in enumerate(entries):
            image_id = str(entry.get("image_id", "")) if isinstance(entry, dict) else ""
            try:
                if not image_id:
                    raise ValueError("entry without image_id")
                out[image_id] = [_polygon(entry.get(side), f"{side} of {image_id}") for side in _SIDES]
            except ValueError as e:
                self.skip(f"{_CONTOURS} images[{i}]", str(e))
        return out

    def _attach_mask(self, view: View, polygons: list[Polygon] | None) -> None:
        """masks["lungs"] from masks/<image_id>.png, else drawn from the contours; neither: not annotated."""
        try:
            mask = self._mask(view, polygons)
        except ValueError as e:
            self.skip(f"masks/{view.image_id}.png", f"{e}; the film is kept without a mask")
            return
        if mask is not None:
            view.masks[LUNGS] = mask

    def _mask(self, view: View, polygons: list[Polygon] | None) -> MaskRef | None:
        path = find_image(self.root / "masks", view.image_id, (".png",))
        if path is not None:
            size = image_size(path)
            if size != view.size:
                raise ValueError(f"mask is {size[1]}x{size[0]}, the film is {view.size[1]}x{view.size[0]}")
            return str(path)
        return draw_lungs(polygons, view.size) if polygons else None

    def _report_unlisted(self, listed: set[str], contours: dict[str, list[Polygon]]) -> None:
        masks = self.root / "masks"
        stems = {p.stem for p in masks.glob("*.png")} if masks.is_dir() else set()
        for stem in sorted(stems - listed):
            self.skip(f"masks/{stem}.png", "mask of a film not listed in labels.csv")
        for image_id in sorted(set(contours) - listed):
            self.skip(f"{_CONTOURS} {image_id}", "contours of a film not listed in labels.csv")

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
