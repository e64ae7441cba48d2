"""`cxrvlm interpret [IMAGE...] [--example] [--model NAME|PATH] [--tasks ...] [--question TEXT]...
[--prior IMAGE [--prior-days N]] [--out DIR] [--csv FILE] [--fhir FILE] [--dicom-seg DIR]
[--dicom-sr DIR]`

Prints one JSON object per image on stdout (a reading, or {"image": ..., "error": ...} for an input that failed),
a progress bar on stderr (several images) and a summary line at the end; with --out, an overlay PNG and an HTML page
per image; with --csv, one row per image (`infer.batch`); with --fhir, a FHIR Bundle (`infer.fhir`); with
--dicom-seg / --dicom-sr, a DICOM Segmentation of each DICOM film's lung masks (`infer.dicom_seg`) / a DICOM SR
of its reading (`infer.dicom_sr`). Exit status 1 when any image failed.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cxrvlm.about import DEFAULT_MODEL
from cxrvlm.infer import batch, dicom_seg, dicom_sr, fhir
from cxrvlm.infer.html import save_html
from cxrvlm.infer.inputs import IMAGE_EXTENSIONS, collect_files
from cxrvlm.infer.interpreter import load, parse_tasks
from cxrvlm.infer.overlay import render_overlay
from cxrvlm.infer.phantom import example_image
from cxrvlm.infer.result import DETECT_LABELS, SEGMENT_LABELS, TASKS
from cxrvlm.io import read_image
from cxrvlm.io.encode import png_bytes

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help=f"image files (PNG, JPEG, TIFF, DICOM) or folders (searched recursively for "
                             f"{', '.join(IMAGE_EXTENSIONS)})")
    parser.add_argument("--example", action="store_true",
                        help="also read the shipped example: a synthetic chest phantom (not a patient)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or checkpoint folder (default: %(default)s)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: %(default)s)")
    parser.add_argument("--question", action="append", default=[], metavar="TEXT",
                        help="a question for the vqa task (repeatable); yes/no questions get a probability")
    parser.add_argument("--prior", metavar="IMAGE", help="an earlier image of the same patient, for comparison")
    parser.add_argument("--prior-days", type=float, metavar="N", help="days between the prior and the image")
    parser.add_argument("--detect-labels", default=",".join(DETECT_LABELS), metavar="A,B",
                        help="what to detect, comma-separated (default: %(default)s)")
    parser.add_argument("--segment-labels", default=",".join(SEGMENT_LABELS), metavar="A,B",
                        help="what to segment, comma-separated (default: %(default)s)")
    parser.add_argument("--threshold", type=float, help="TB operating point (default: the model's, else 0.5)")
    parser.add_argument("--no-mask-refiner", action="store_true",
                        help="give the masks as the model's tokens decode them, not redrawn on the film")
    parser.add_argument("--no-view-gate", action="store_true",
                        help="read every image the content rules let through, even one the view gate does not "
                             "take for a frontal chest radiograph (a lateral view, another body part, a mask)")
    parser.add_argument("--csv", metavar="FILE", help="also write one row per film (file, verdict, TB probability, "
                        "findings called, quality, error, ms) to this CSV file")
    parser.add_argument("--fhir", metavar="FILE", help="also write the readings as a FHIR R4 Bundle (a "
                        "DiagnosticReport and Observations per film; extra 'fhir') to this JSON file")
    parser.add_argument("--dicom-seg", metavar="DIR", help="for DICOM inputs, also write the lung masks as a DICOM "
                        "Segmentation of the film (<name>.seg.dcm; extra 'dicom-export') into this folder")
    parser.add_argument("--dicom-sr", metavar="DIR", help="for DICOM inputs, also write the reading as a DICOM "
                        "Structured Report of the film (<name>.sr.dcm, TID 1500; extra 'dicom-export')")
    parser.add_argument("--out", metavar="DIR", help="write <name>.overlay.png and <name>.html per image here")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _labels(text: str) -> list[str]:
    labels = [x.strip() for x in text.split(",") if x.strip()]
    if not labels:
        raise ValueError(f"no labels in {text!r}; give them comma-separated, e.g. 'right lung,left lung'")
    return labels


def _unique_stem(path: str, used: set[str]) -> str:
    """A file-name stem for an input, unique within the batch (folders may hold files of the same name)."""
    base = Path(path).stem or "image"
    stem, n = base, 1
    while stem in used:
        n += 1
        stem = f"{base}-{n}"
    used.add(stem)
    return stem


def _write_outputs(out: Path, stem: str, reading: dict[str, Any], pixels: Any) -> None:
    picture = png_bytes(render_overlay(pixels, reading))  # encoded once for the file and the page
    (out / f"{stem}.overlay.png").write_bytes(picture)
    save_html(reading, picture, out / f"{stem}.html")


def _write_dicom_exports(reading: dict[str, Any], path: str, stem: str, args: argparse.Namespace) -> None:
    """The reading's DICOM SEG (lung masks) and SR (the reading) of a DICOM input, as asked; a warning in the
    reading for each that cannot be written (the reading itself is kept)."""
    asked = [(what, Path(folder) / f"{stem}{suffix}", write, missing) for what, folder, suffix, write, missing in (
        ("Segmentation", args.dicom_seg, ".seg.dcm", dicom_seg.write_lung_segmentation, "no lung mask"),
        ("Structured Report", args.dicom_sr, ".sr.dcm", dicom_sr.write_report, "no TB verdict")) if folder]
    dicom = bool(asked) and dicom_seg.is_dicom(path)
    for what, target, write, missing in asked:
        problem = "the input is not a DICOM file"
        if dicom:
            try:
                problem = f"the reading has {missing}" if write(reading, path, target) is None else ""
            except (ValueError, OSError) as e:  # e.g. masks of a reduced big film: the export fails, not the reading
                problem = str(e)
        if problem:
            reading["warnings"].append(f"no DICOM {what}: {problem}")


def _one(interp: Any, path: str, args: argparse.Namespace, out: Path | None, used: set[str]) -> dict[str, Any]:
    """Interpret one file -> its reading, or {"image", "error"} when the input (or anything after it) failed."""
    try:
        reading, pixels = interp.interpret_with_pixels(path, tasks=args.tasks, questions=args.question or None,
                                                       prior=args.prior_image, prior_days=args.prior_days)
        stem = _unique_stem(path, used)
        if out is not None:
            _write_outputs(out, stem, reading, pixels)
        _write_dicom_exports(reading, path, stem, args)
        return reading
    except (ValueError, OSError) as e:  # an unreadable image, a bad array: this input fails, the batch goes on
        return {"image": path, "error": str(e)}
    except Exception as e:  # noqa: BLE001 - one image must not end a batch of thousands; the reason is kept
        log.debug("unexpected failure on %s", path, exc_info=True)
        return {"image": path, "error": f"{type(e).__name__}: {e}"}


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    args.tasks = parse_tasks(args.tasks)  # a bad task list is a usage error before any model is loaded
    files = collect_files(args.images) + ([str(example_image())] if args.example else [])
    if not files:
        raise ValueError(f"no image files found in {', '.join(args.images)}" if args.images else
                         "no image given: name image files or folders, or use --example")
    # the prior is read once; an unreadable one is a usage error, not a failure of every image
    args.prior_image = read_image(args.prior) if args.prior else None
    if args.fhir:
        fhir.require()  # a missing extra is a usage error before any film is read
    if args.dicom_seg or args.dicom_sr:
        dicom_seg.require()
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    interp = load(args.model, threshold=args.threshold, detect_labels=_labels(args.detect_labels),
                  segment_labels=_labels(args.segment_labels), refine_masks=not args.no_mask_refiner,
                  **({"view_gate": None} if args.no_view_gate else {}))
    rows, readings, used = [], [], set()
    bar = tqdm(files, desc="interpret", unit="film", file=sys.stderr, disable=len(files) < 2, dynamic_ncols=True)
    for path in bar:
        start = time.perf_counter()
        result = _one(interp, path, args, out, used)
        rows.append(batch.row(result, (time.perf_counter() - start) * 1000))
        if args.fhir:
            readings.append(result)
        print(json.dumps(result), flush=True)
        if rows[-1]["error"] or rows[-1]["quality"] != "assessable":
            problem = f"error: {rows[-1]['error']}" if rows[-1]["error"] else rows[-1]["quality"]
            bar.write(f"{path}: {problem}", file=sys.stderr)
    bar.close()
    if args.csv:
        batch.write_csv(rows, args.csv)
    if args.fhir:
        Path(args.fhir).write_text(fhir.readings_bundle(readings).model_dump_json(indent=1) + "\n")
    print(batch.summary(rows), file=sys.stderr)
    return 1 if any(r["error"] for r in rows) else 0
