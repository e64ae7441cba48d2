"""The mask refiner: its geometry (crop of the grown box and paste back), weights files and the objects it keeps
(its training: tests/train/test_mask_refiner.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from seg_shapes import film_and_lung, iou

from cxrvlm.tokens import seg_refine as sr
from cxrvlm.tokens.seg_refine import MaskRefiner, MaskRefinerError, refine_objects


class _CoarseBack(torch.nn.Module):
    """A 'refiner' that gives the coarse-mask channel back: refinement is then the identity, up to resampling."""

    widths = [16]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1] * 10.0


def test_crop_and_paste_put_a_mask_back_where_it_was() -> None:
    film, lung = film_and_lung()
    refiner = MaskRefiner(_CoarseBack())
    box = (40, 50, 140, 250)  # the lung's tight box
    out = refiner.refine(film, [box], [lung])[0]
    assert out.shape == lung.shape
    assert iou(out, lung) > 0.95


def test_large_films_are_refined_at_working_size_and_come_back_full_size() -> None:
    film, lung = film_and_lung()
    big_film = np.kron(film, np.ones((4, 4), np.float32))  # 1200 x 1040: shrunk to 512 on the long side
    big_lung = np.kron(lung, np.ones((4, 4), bool))
    out = MaskRefiner(_CoarseBack()).refine(big_film, [(160, 200, 560, 1000)], [big_lung])[0]
    assert out.shape == big_lung.shape
    assert iou(out, big_lung) > 0.95


def test_refine_objects_keeps_objects_without_masks_and_boxes_follow_the_masks() -> None:
    film, lung = film_and_lung()
    h, w = lung.shape
    loose = (20 / w, 30 / h, 160 / w, 270 / h)  # a box larger than the lung
    objects = [("right lung", loose, lung, "codes"), ("left lung", (0.6, 0.2, 0.9, 0.8), None, "codes2")]
    got = refine_objects(film, objects, MaskRefiner(_CoarseBack()))
    assert got[1] == objects[1]
    label, box, mask, extra = got[0]
    assert (label, extra) == ("right lung", "codes")
    ys, xs = np.nonzero(mask)
    assert box == pytest.approx((xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h))
    assert box[0] > loose[0] and box[2] < loose[2]  # tight to the refined mask, not the model's box


def test_an_object_the_refiner_would_erase_is_kept_as_decoded() -> None:
    class Erase(torch.nn.Module):
        widths = [16]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full_like(x[:, 0], -10.0)

    film, lung = film_and_lung()
    objects = [("lungs", (0.1, 0.1, 0.6, 0.9), lung)]
    assert refine_objects(film, objects, MaskRefiner(Erase())) == objects


def test_bad_inputs_name_the_problem() -> None:
    film, lung = film_and_lung()
    refiner = MaskRefiner(_CoarseBack())
    with pytest.raises(MaskRefinerError, match="2 boxes but 1 masks"):
        refiner.refine(film, [(0, 0, 5, 5)] * 2, [lung])
    with pytest.raises(MaskRefinerError, match="mask 0 has shape"):
        refiner.refine(film, [(0, 0, 5, 5)], [lung[:10]])
    with pytest.raises(MaskRefinerError, match="2-D"):
        refiner.refine(film[None], [(0, 0, 5, 5)], [lung])


def test_weights_round_trip_and_wrong_files_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    refiner = MaskRefiner(sr.build_net())
    path = tmp_path / "refiner.safetensors"
    refiner.save(path)
    again = MaskRefiner.from_file(path)
    film, lung = film_and_lung()
    box = (40, 50, 140, 250)
    assert np.array_equal(refiner.refine(film, [box], [lung])[0], again.refine(film, [box], [lung])[0])
    with pytest.raises(MaskRefinerError, match="not found"):
        MaskRefiner.from_file(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(MaskRefinerError, match="not a cxrvlm-mask-refiner file"):
        MaskRefiner.from_file(tmp_path / "other.safetensors")


def test_the_shipped_refiner_loads_and_improves_a_cut_off_lung() -> None:
    """The shipped weights on a drawn film: a mask cut off by a box short at the base grows back toward the base."""
    film, lung = film_and_lung()
    short = lung.copy()
    short[220:] = False  # the box stopped 30 px short of the lung's lowest point
    out = MaskRefiner.default().refine(film, [(40, 50, 140, 220)], [short])[0]
    assert iou(out, lung) > iou(short, lung)


def test_each_pass_starts_from_the_last_passes_mask_and_box() -> None:
    film, lung = film_and_lung()
    h, w = lung.shape
    seen = []

    class Recorder(MaskRefiner):
        def refine(self, pixels, boxes, masks):  # noqa: ANN001, ANN201
            seen.append((list(boxes[0]), masks[0].copy()))
            return super().refine(pixels, boxes, masks)

    loose = (20 / w, 30 / h, 160 / w, 270 / h)
    got = refine_objects(film, [("right lung", loose, lung)], Recorder(_CoarseBack()), passes=2)
    assert len(seen) == 2
    first_box = got[0][1]  # after pass 2; pass 1's tight box is what pass 2 was given
    assert seen[1][0] != seen[0][0]
    assert seen[1][0][0] == pytest.approx(first_box[0] * w, abs=2) and seen[1][0][3] == pytest.approx(
        first_box[3] * h, abs=2)
