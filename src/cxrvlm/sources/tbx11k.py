"""TBX11K: 512x512 chest X-rays of healthy, sick-but-not-TB and TB cases, with TB lesion boxes.

Expected layout (`root` is the `TBX11K/` folder of the authors' download):

    TBX11K/
      imgs/health/h0001.png, imgs/sick/s0001.png, imgs/tb/tb0003.png      (imgs/test/ and imgs/extra/ are not read)
      annotations/json/TBX11K_train.json, TBX11K_val.json, ...            COCO; `file_name` relative to imgs/
      lists/TBX11K_train.txt, TBX11K_val.txt, ...                          optional: the official split lists

Records: one study per image (the dataset has no patient ids, so each image is its own patient `tbx11k:<stem>`);
one frontal view of unspecified position. Labels: `Tuberculosis` 1 for the `tb` folder, 0 for `health` and `sick`;
`No Finding` 1 for `health` only; meta `category` = healthy / sick_non_tb / tb. TB lesions become boxes labelled
"active tuberculosis" (ActiveTuberculosis), "latent tuberculosis" (ObsoletePulmonaryTuberculosis) or
"tuberculosis" (PulmonaryTuberculosis: type uncertain); meta `tb_types` lists them. Every COCO file under
annotations/json/ is read and identical boxes are kept once. meta `boxes_annotated` is True when the image is in
one of the COCO files: a TB image missing from them (e.g. tb1199) has unknown, not absent, lesions. meta `split`
is train / val / test from the lists where present. `imgs/test/` has no public labels and `imgs/extra/` holds the
Shenzhen, Montgomery and DA/DB sets, which the `tb` and `shenzhen_montgomery` adapters read.

Licence: free for non-commercial research (authors' terms; CC BY-NC-SA as the release states).
Citation: Liu Y, Wu YH, Ban Y, Wang H, Cheng MM. Rethinking computer-aided tuberculosis diagnosis. CVPR 2020,
pp. 2646-2655.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import Box, Study, View
from cxrvlm.sources._common import image_size
from cxrvlm.sources.base import Source, register_source

# folder -> (category, Tuberculosis, No Finding)
_FOLDERS = {"health": ("healthy", 0.0, 1.0), "sick": ("sick_non_tb", 0.0, 0.0), "tb": ("tb", 1.0, 0.0)}
_CATEGORIES = {
    "activetuberculosis": "active tuberculosis",
    "obsoletepulmonarytuberculosis": "latent tuberculosis",
    "pulmonarytuberculosis": "tuberculosis",
}
_SPLITS = {"train": "train", "val": "val", "test": "test"}


def _list_split(path: Path) -> str | None:
    """lists/TBX11K_train.txt -> "train"; trainval and unknown lists -> None."""
    stem = path.stem.lower()
    for prefix in ("tbx11k_", "all_"):
        if stem.startswith(prefix):
            stem = stem[len(prefix):]
    return _SPLITS.get(stem)


@register_source
class TBX11K(Source):
    name = "tbx11k"
    licence = "CC BY-NC-SA (non-commercial research), TBX11K authors"
    citation = "Liu Y, Wu YH, Ban Y, Wang H, Cheng MM. Rethinking computer-aided tuberculosis diagnosis. CVPR 2020."

    def _studies(self) -> Iterator[Study]:
        imgs = self.require("imgs")
        boxes, sizes, annotated = self._read_annotations()
        splits = self._read_lists()
        folders = [imgs / f for f in _FOLDERS if (imgs / f).is_dir()]
        if not folders:
            raise ValueError(f"source {self.name!r}: none of imgs/health, imgs/sick, imgs/tb found in {self.root}")
        for folder in folders:
            category, tb, no_finding = _FOLDERS[folder.name]
            for path in sorted(folder.glob("*.png")):
                size = sizes.get(path.name) or self._size(path)
                if size is None:
                    continue
                view = View(image_id=path.stem, path=str(path), size=size, boxes=boxes.get(path.name, []))
                tb_types = sorted({b.label for b in view.boxes})
                meta: dict[str, Any] = {"category": category, "boxes_annotated": path.name in annotated}
                if tb_types:
                    meta["tb_types"] = tb_types
                if path.name in splits:
                    meta["split"] = splits[path.name]
                yield Study(
                    study_id=f"{self.name}:{path.stem}", patient_id=f"{self.name}:{path.stem}", source=self.name,
                    licence=self.licence, views=[view],
                    labels={"Tuberculosis": tb, "No Finding": no_finding}, meta=meta,
                )

    def _size(self, path: Path) -> tuple[int, int] | None:
        try:
            return image_size(path)
        except ValueError as e:
            self.skip(str(path.relative_to(self.root)), str(e))
            return None

    def _read_annotations(self) -> tuple[dict[str, list[Box]], dict[str, tuple[int, int]], set[str]]:
        """All COCO files -> (image file name -> boxes, file name -> (H, W), file names the files list)."""
        boxes: dict[str, list[Box]] = {}
        sizes: dict[str, tuple[int, int]] = {}
        annotated: set[str] = set()
        seen: set[tuple] = set()
        folder = self.root / "annotations" / "json"
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                images = {im["id"]: im for im in data["images"]}
                categories = {c["id"]: c["name"] for c in data.get("categories", [])}
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.skip(str(path.relative_to(self.root)), f"not a COCO annotation file: {e}")
                continue
            for im in images.values():
                annotated.add(Path(str(im.get("file_name", ""))).name)
                if isinstance(im.get("height"), int) and isinstance(im.get("width"), int):
                    sizes[Path(str(im.get("file_name", ""))).name] = (im["height"], im["width"])
            for ann in data.get("annotations", []):
                item = f"{path.relative_to(self.root)} annotation {ann.get('id')}"
                try:
                    name, box = self._box(ann, images, categories)
                except (KeyError, TypeError, ValueError) as e:
                    self.skip(item, f"unusable box: {e}")
                    continue
                key = (name, box.label, *(round(v, 6) for v in box.as_tuple()))
                if key not in seen:
                    seen.add(key)
                    boxes.setdefault(name, []).append(box)
        return boxes, sizes, annotated

    @staticmethod
    def _box(ann: dict, images: dict, categories: dict) -> tuple[str, Box]:
        image = images.get(ann.get("image_id"))
        if image is None:
            raise ValueError(f"image_id {ann.get('image_id')!r} is not among the file's images")
        if ann.get("category_id") not in categories:
            raise ValueError(f"unknown category id {ann.get('category_id')!r}")
        category = str(categories[ann["category_id"]])
        label = _CATEGORIES.get(category.lower())
        if label is None:
            raise ValueError(f"unknown category {category!r}")
        x, y, w, h = (float(v) for v in ann["bbox"])
        box = Box.from_pixels(label, x, y, x + w, y + h, int(image["width"]), int(image["height"]))
        return Path(str(image["file_name"])).name, box

    def _read_lists(self) -> dict[str, str]:
        """lists/*.txt -> image file name -> split."""
        splits: dict[str, str] = {}
        folder = self.root / "lists"
        for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            split = _list_split(path)
            if split is None:
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    splits[Path(line.split()[0]).name] = split
        return splits
