"""The pieces around the interpreter: question kinds, token-score alignment, overlay, HTML page, the phantom."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from infer_fixtures import token_scores
from PIL import Image, ImageDraw
from scipy import ndimage

from cxrvlm import NOTICE
from cxrvlm.infer.html import render_html
from cxrvlm.infer.inputs import collect_files
from cxrvlm.infer.overlay import (
    HEAT_ALPHA,
    HEAT_COLOUR,
    LAYERS,
    MASK_ALPHA,
    PALETTE,
    heat_line,
    is_drawn,
    label_colours,
    overlay_layers,
    render_overlay,
)
from cxrvlm.infer.phantom import PHANTOM_PNG, example_image, render_phantom
from cxrvlm.io.encode import png_base64
from cxrvlm.tasks import vqa
from cxrvlm.tasks._reading import box_tokens, geometric_mean, object_scores
from cxrvlm.tasks.vqa import closed_candidates, make_question
from cxrvlm.tokens.loc import encode_box
from cxrvlm.tokens.rle import rle_decode_resized, rle_encode


@pytest.mark.parametrize("question, expected", [
    ("Is this chest X-ray normal?", ["yes", "no"]),
    ("does the heart look enlarged", ["yes", "no"]),
    (vqa.Q_VIEW, ["pa", "ap", "lateral"]),
    (vqa.Q_LUNG_SIZE, ["right", "left"]),
    ("How dense is the lung opacity?", ["none", "mild", "moderate", "severe"]),
    (vqa.change_question(4), ["worsened", "improved", "stayed the same"]),
    ("Which of these findings is present in this X-ray: COVID-19 or pneumonia?", ["covid-19", "pneumonia"]),
    ("What abnormality is seen in the left lung?", []),
])
def test_closed_candidates(question: str, expected: list[str]) -> None:
    assert closed_candidates(question) == expected


def test_make_question() -> None:
    assert make_question({"question": "Size of the heart?", "candidates": ["small", "large"]}).candidates == [
        "small", "large"]
    assert make_question(vqa.change_question(2)).needs_prior
    with pytest.raises(ValueError, match="repeat"):
        make_question({"question": "x?", "candidates": ["a", "a"]})
    with pytest.raises(ValueError, match="empty question"):
        make_question("   ")


def test_object_scores_follow_the_text_across_malformed_fragments() -> None:
    a, b = (0.1, 0.1, 0.4, 0.9), (0.6, 0.1, 0.9, 0.9)
    text = f"{encode_box(*a)} right lung ; <loc0003><loc0004> junk ; {encode_box(*b)} left lung"
    scores = token_scores(text)
    probs = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]  # the 10 loc tokens, in order
    it = iter(probs)
    scores = [(t, next(it)) if t.startswith("<loc") else (t, p) for t, p in scores]
    got = object_scores(text, scores, [box_tokens(a), box_tokens(b)])
    assert got == pytest.approx([geometric_mean(probs[:4]), geometric_mean(probs[6:])])
    # a loc token spelled out of byte tokens: text and tokens disagree -> None (the caller falls back)
    spelled = [(c, 0.5) for c in "<loc0001>"] + scores
    assert object_scores("<loc0001>" + text, spelled, [box_tokens(a)]) is None
    assert geometric_mean([]) == 0.0 and geometric_mean([0.25, 1.0]) == pytest.approx(0.5)


def _reading_with_mask(h: int, w: int) -> tuple[dict, np.ndarray]:
    mask = np.zeros((h, w), bool)
    mask[10:40, 8:30] = True
    reading = {"notice": NOTICE, "tb": {"probability": 0.25, "label": "normal", "threshold": 0.5,
                                        "threshold_source": "default"},
               "segmentations": [{"label": "right lung", "box": [8, 10, 30, 40], "mask": rle_encode(mask),
                                  "score": 0.9}],
               "detections": [{"label": "left lung", "box": [34, 12, 58, 44], "score": 0.7}]}
    return reading, mask


def test_overlay_draws_masks_boxes_and_banner() -> None:
    h, w = 64, 64
    reading, _ = _reading_with_mask(h, w)
    pixels = np.full((h, w), 0.5, np.float32)
    image = render_overlay(pixels, reading)
    scale = 512 / 64
    top = image.height - 512  # the banner above the image
    assert image.width == 512 and top > 20
    rgb = np.asarray(image).astype(int)
    inside = rgb[top + int(25 * scale), int(19 * scale)]  # mask centre: gray blended with the first colour
    expected = (1 - MASK_ALPHA) * 128 + MASK_ALPHA * np.array(PALETTE[0])
    assert np.abs(inside - expected).max() <= 2
    assert (rgb[top + int(55 * scale), int(5 * scale)] == 128).all()  # outside everything: the gray image
    edge = rgb[top + int(30 * scale), int(34 * scale)]  # on the detection box's left edge: its colour
    assert tuple(edge) == PALETTE[1]
    assert rgb[:top].mean() < 60  # dark banner with light text
    assert rgb[:top].max() == 255


def _reading_with_overlaps(h: int, w: int) -> dict:
    """Two masks that overlap, a box across both, and TB called with its map hot on the right half."""
    reading, _ = _reading_with_mask(h, w)
    left = np.zeros((h, w), bool)
    left[20:50, 24:60] = True
    reading["segmentations"].append({"label": "left lung", "box": [24, 20, 60, 50], "mask": rle_encode(left),
                                     "score": 0.8})
    reading["detections"].append({"label": "heart", "box": [12, 30, 50, 60], "score": 0.4})
    reading["tb"]["label"] = "tuberculosis"
    cells = np.tile(np.linspace(0, 255, 8).astype(np.uint8), (8, 1))
    reading["saliency"] = [{"label": "tuberculosis", "png": png_base64(Image.fromarray(cells))}]
    return reading


def _drawn_in_place(film: Image.Image, reading: dict, top: int, scale: float) -> np.ndarray:
    """The overlay as it was drawn before it had layers: on the film itself, each mask blended in turn and outlined,
    then the TB map blended, then the boxes drawn."""
    rgb = np.asarray(film.convert("RGB")).astype(np.float32)
    below = rgb[top:]
    colours = label_colours(reading)
    for seg in reading["segmentations"]:
        mask = rle_decode_resized(seg["mask"], below.shape[:2])
        colour = np.array(colours[seg["label"]], np.float32)
        below[mask] = (1 - MASK_ALPHA) * below[mask] + MASK_ALPHA * colour
        below[mask & ~ndimage.binary_erosion(mask, iterations=2)] = colour
    cells = Image.open(io.BytesIO(base64.b64decode(reading["saliency"][0]["png"]))).convert("L")
    heat = np.asarray(cells.resize(below.shape[1::-1], Image.Resampling.BILINEAR), np.float32) / 255
    alpha = (HEAT_ALPHA * np.clip((heat - 0.5) * 2, 0, 1))[:, :, None]
    rgb[top:] = (1 - alpha) * below + alpha * np.array(HEAT_COLOUR, np.float32)
    picture = Image.fromarray(np.rint(rgb).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for det in reading["detections"]:
        x1, y1, x2, y2 = (v * scale for v in det["box"])
        draw.rectangle([x1, y1 + top, x2, y2 + top], outline=colours[det["label"]], width=2)
    return np.asarray(picture).astype(int)


def test_the_overlay_is_its_layers_stacked_and_the_same_picture_as_drawn_in_place() -> None:
    h, w = 64, 64
    reading = _reading_with_overlaps(h, w)
    pixels = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    layers = overlay_layers(pixels, reading)
    assert tuple(layers) == LAYERS and {(im.mode, im.size) for im in layers.values()} == {("RGBA", (512, 640))}
    top = layers["film"].height - 512  # the banner and the legend
    assert np.asarray(layers["film"])[:, :, 3].min() == 255  # the film hides what is under it
    for name in LAYERS[1:]:  # the others are transparent above the film and wherever they draw nothing
        alpha = np.asarray(layers[name])[:, :, 3]
        assert alpha[:top].max() == 0 and 0 < (alpha > 0).mean() < 0.5, name
    picture = np.asarray(render_overlay(pixels, reading)).astype(int)
    assert np.abs(picture - _drawn_in_place(layers["film"], reading, top, 512 / 64)).max() <= 2
    assert list(overlay_layers(pixels, reading, all_maps=True)["heatmaps"]) == ["tuberculosis"]
    reading["tb"]["label"] = "normal"  # no map for a call not made
    assert not is_drawn(overlay_layers(pixels, reading)["heatmap"]) and is_drawn(layers["heatmap"])
    # a called finding's map, drawn as TB's would be: in the overlay when TB is not called, and on the page's choice
    reading["saliency"].append({**reading["saliency"][0], "label": "covid-19"})
    shown = overlay_layers(pixels, reading, all_maps=True)
    assert list(shown["heatmaps"]) == ["covid-19"]
    assert np.array_equal(np.asarray(shown["heatmaps"]["covid-19"]), np.asarray(layers["heatmap"]))
    assert np.array_equal(np.asarray(shown["heatmap"]), np.asarray(layers["heatmap"]))
    assert [text for _, text in heat_line(reading)] == ["red: where the covid-19 score comes from (saliency)"]


def test_html_is_self_contained_and_escaped() -> None:
    reading, _ = _reading_with_mask(64, 64)
    reading.update({"image": "x<1>.png", "model": "m", "image_size": [64, 64], "prior": None,
                    "report": "<script>alert(1)</script> Lungs clear.", "findings": [],
                    "answers": [{"question": "Is it <b>?", "answer": "yes", "probability": 0.75, "closed": True}],
                    "warnings": ["detect: odd & strange"], "timing_ms": {"total": 12.5}})
    page = render_html(reading, Image.new("RGB", (8, 8)))
    assert "<script>" not in page and "&lt;script&gt;" in page and "Is it &lt;b&gt;?" in page
    assert page.count(NOTICE) == 2 and "data:image/png;base64," in page
    assert "660" in page  # right-lung mask area 30 x 22 px
    assert "odd &amp; strange" in page and "http" not in page  # nothing fetched from elsewhere


def test_collect_files(tmp_path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.PNG", "a/b/two.dcm", "a/b/skip.txt", "a/three.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    found = collect_files([tmp_path / "a", tmp_path / "a" / "one.PNG", tmp_path / "given.bin"])
    assert found == [str(tmp_path / p) for p in ("a/b/two.dcm", "a/one.PNG", "a/three.jpeg", "given.bin")]


def test_phantom_is_a_chest_and_the_shipped_file_is_its_render() -> None:
    image = render_phantom(256, seed=0)
    assert image.shape == (256, 256) and image.dtype == np.float32
    assert np.array_equal(image, render_phantom(256, seed=0))
    lung = image[100:140, 60:90].mean()  # patient's right lung field
    mediastinum = image[100:140, 122:134].mean()
    outside = image[5:20, 5:20].mean()  # air beside the neck
    assert outside < lung < mediastinum and mediastinum - lung > 0.15
    assert example_image() == PHANTOM_PNG
    shipped = np.asarray(Image.open(PHANTOM_PNG))
    assert shipped.shape == (512, 512) and shipped.dtype == np.uint8
    assert np.abs(shipped.astype(int) - np.rint(render_phantom(512) * 255).astype(int)).max() <= 1


def test_overlay_legend_names_each_label_once_with_its_scores() -> None:
    from cxrvlm.infer.overlay import label_colours, legend_lines

    reading, _ = _reading_with_mask(64, 64)
    reading["detections"].append({"label": "right lung", "box": [8, 10, 30, 40], "score": 0.8})
    lines = legend_lines(reading, label_colours(reading))
    assert [text for _, text in lines] == ["right lung: box 0.80, mask", "left lung: box 0.70"]
    assert lines[0][0] == PALETTE[0] and lines[1][0] == PALETTE[1]
