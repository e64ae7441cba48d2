"""Writers of tiny datasets in the exact layouts of the public downloads, for the source adapter tests.

Each writer builds a few images (a few dozen pixels each) plus the annotation files under `root`, including one
deliberately bad item whose skip reason the tests check.
"""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
from PIL import Image


def png(path: Path, height: int = 32, width: int = 40, mask: np.ndarray | None = None) -> Path:
    """A small 8-bit grayscale image (or a 0/255 mask) at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mask is not None:
        pixels = mask.astype(np.uint8) * 255
    else:
        pixels = (np.arange(height * width).reshape(height, width) % 251).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def jpg(path: Path, height: int = 24, width: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), 128, np.uint8)).save(path, format="JPEG")
    return path


def dicom(path: Path, rows: int, columns: int) -> Path:
    """A minimal valid 16-bit MONOCHROME2 DICOM file with Rows/Columns."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((rows, columns), np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_csv(path: Path, header: list[str], rows: list[list], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open(path, "wt", newline="") if gz else open(path, "w", newline="")) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def lung_masks(height: int = 32, width: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(mask on the image's right half, mask on the image's left half)."""
    on_right, on_left = np.zeros((height, width), bool), np.zeros((height, width), bool)
    on_right[4:28, 24:36] = True
    on_left[6:26, 4:16] = True
    return on_right, on_left


def shenzhen_montgomery(root: Path) -> None:
    china, mont = root / "ChinaSet_AllFiles", root / "MontgomerySet"
    png(china / "CXR_png" / "CHNCXR_0001_0.png")
    png(china / "CXR_png" / "CHNCXR_0002_1.png", 30, 36)
    (china / "ClinicalReadings").mkdir(parents=True)
    (china / "ClinicalReadings" / "CHNCXR_0001_0.txt").write_text("male 45yrs\nnormal\n")
    (china / "ClinicalReadings" / "CHNCXR_0002_1.txt").write_text("Female 29yrs PTB in the right upper field\n")
    png(china / "mask" / "CHNCXR_0001_0_mask.png", mask=np.ones((32, 40), bool))
    png(china / "mask" / "CHNCXR_0002_1_mask.png", mask=np.ones((10, 10), bool))  # wrong size
    png(mont / "CXR_png" / "MCUCXR_0001_1.png")
    on_right, on_left = lung_masks()
    # The folders are named for the patient's sides: leftMask lies on the image's right.
    png(mont / "ManualMask" / "leftMask" / "MCUCXR_0001_1.png", mask=on_right)
    png(mont / "ManualMask" / "rightMask" / "MCUCXR_0001_1.png", mask=on_left)
    (mont / "ClinicalReadings").mkdir(parents=True)
    (mont / "ClinicalReadings" / "MCUCXR_0001_1.txt").write_text(
        "Patient's Sex: F\nPatient's Age: 040Y\nright upper lobe cavity\n")
    png(mont / "CXR_png" / "MCUCXR_extra.png")  # not a set image name


def tbx11k(root: Path) -> None:
    imgs = root / "TBX11K" / "imgs"
    for rel in ("health/h0001.png", "sick/s0001.png", "tb/tb0001.png", "tb/tb0002.png", "test/t0001.png"):
        png(imgs / rel, 64, 64)
    images = [{"id": 1, "file_name": "tb/tb0001.png", "width": 64, "height": 64},
              {"id": 2, "file_name": "health/h0001.png", "width": 64, "height": 64}]
    categories = [{"id": 1, "name": "ActiveTuberculosis"}, {"id": 2, "name": "ObsoletePulmonaryTuberculosis"},
                  {"id": 3, "name": "PulmonaryTuberculosis"}]
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 16, 16, 8]},
                   {"id": 2, "image_id": 1, "category_id": 2, "bbox": [40, 8, 8, 8]},
                   {"id": 3, "image_id": 1, "category_id": 99, "bbox": [0, 0, 4, 4]}]
    folder = root / "TBX11K" / "annotations" / "json"
    folder.mkdir(parents=True)
    coco = {"images": images, "categories": categories, "annotations": annotations}
    (folder / "TBX11K_train.json").write_text(json.dumps(coco))
    # trainval repeats the train boxes: they must be kept once.
    (folder / "TBX11K_trainval.json").write_text(json.dumps({**coco, "annotations": annotations[:1]}))
    lists = root / "TBX11K" / "lists"
    lists.mkdir()
    (lists / "TBX11K_train.txt").write_text("health/h0001.png\ntb/tb0001.png\n")
    (lists / "TBX11K_val.txt").write_text("sick/s0001.png\n")


def vindr(root: Path) -> None:
    """Kaggle layout: train.csv + image_labels_train.csv + train/<id>.dicom."""
    dicom(root / "train" / "img_a.dicom", 200, 100)
    dicom(root / "train" / "img_b.dicom", 50, 50)
    dicom(root / "train" / "img_c.dicom", 100, 100)
    (root / "train" / "img_e.dicom").write_bytes(b"not a dicom file at all")
    header = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
    write_csv(root / "train.csv", header, [
        ["img_a", "Cardiomegaly", 3, "R1", 25, 100, 75, 150],
        ["img_a", "Cardiomegaly", 3, "R2", 25, 100, 75, 150],  # identical box of another reader: kept once
        ["img_a", "Nodule/Mass", 8, "R3", 10, 20, 20, 40],
        ["img_b", "No finding", 14, "R1", "", "", "", ""],
        ["img_b", "No finding", 14, "R2", "", "", "", ""],
        ["img_c", "Aortic enlargement", 0, "R1", 40, 30, 60, 50],
        ["img_c", "Pleural effusion", 10, "R2", "abc", 1, 2, 3],  # bad coordinates
        ["img_d", "Cardiomegaly", 3, "R1", 1, 2, 3, 4],  # no DICOM
        ["img_e", "No finding", 14, "R1", "", "", "", ""],  # corrupt DICOM
    ])
    write_csv(root / "image_labels_train.csv",
              ["image_id", "rad_ID", "Cardiomegaly", "Nodule/Mass", "Rib fracture", "Tuberculosis", "No finding"], [
                  ["img_a", "R1", 1, 0, 0, 0, 0], ["img_a", "R2", 1, 0, 0, 1, 0], ["img_a", "R3", 0, 1, 0, 0, 0],
                  ["img_b", "R1", 0, 0, 0, 0, 1], ["img_b", "R2", 0, 0, 0, 0, 1],
              ])


def nih(root: Path) -> None:
    header = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
              "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]", ""]
    write_csv(root / "Data_Entry_2017.csv", header, [
        ["00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, "058Y", "M", "AP", 2500, 2048, 0.14, 0.14, ""],
        ["00000001_000.png", "Cardiomegaly", 0, 1, "057Y", "M", "PA", 2682, 2749, 0.14, 0.14, ""],
        ["00000001_002.png", "No Finding", 2, 1, "414Y", "M", "PA", 2500, 2048, 0.14, 0.14, ""],
        ["00000002_000.png", "Cardiomegaly|Kidney Stone", 0, 2, "081Y", "F", "PA", 2500, 2048, 0.14, 0.14, ""],
        ["00000003_000.png", "Hernia", 0, 3, "074Y", "F", "PA", 2500, 2048, 0.14, 0.14, ""],
    ])
    png(root / "images_001" / "images" / "00000001_000.png", 64, 64)
    png(root / "images_001" / "images" / "00000001_001.png", 64, 64)
    png(root / "images" / "00000001_002.png", 64, 64)
    png(root / "images" / "00000002_000.png", 64, 64)
    write_csv(root / "BBox_List_2017.csv", ["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "", "", ""], [
        ["00000001_000.png", "Cardiomegaly", 256.0, 512.0, 512.0, 256.0, "", "", ""],
        ["00000001_001.png", "Effusion", "n/a", 1, 2, 3, "", "", ""],
    ])
    (root / "test_list.txt").write_text("00000001_002.png\n")
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n")


_IU_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <uId id="CXR{n}"/>
  <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
    <Article PubModel="Electronic">
      <Abstract>
        <AbstractText Label="COMPARISON">None.</AbstractText>
        <AbstractText Label="INDICATION">Positive TB test</AbstractText>
        <AbstractText Label="FINDINGS">{findings}</AbstractText>
        <AbstractText Label="IMPRESSION">{impression}</AbstractText>
      </Abstract>
    </Article>
  </MedlineCitation>
  <MeSH>{mesh}</MeSH>
  {images}
</eCitation>
"""


def iu_xray(root: Path) -> None:
    reports = root / "ecgen-radiology"
    reports.mkdir(parents=True)

    def write(n: int, findings: str, impression: str, mesh: list[str], images: list[str]) -> None:
        text = _IU_XML.format(n=n, findings=findings, impression=impression,
                              mesh="".join(f"<major>{m}</major>" for m in mesh),
                              images="".join(f'<parentImage id="{i}"><caption>Xray Chest PA and Lateral</caption>'
                                             f"</parentImage>" for i in images))
        (reports / f"{n}.xml").write_text(text)

    write(1, "The heart is enlarged.  Opacity at the left base.", "Cardiomegaly.",
          ["Cardiomegaly/mild", "Opacity/lung/base/left", "Thoracic Vertebrae/degenerative"],
          ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"])
    write(2, "", "Normal chest x-XXXX.", ["normal"], ["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"])
    write(3, "Clear lungs.", "No acute disease.", ["normal"], ["CXR3_IM-1384-1001"])
    (reports / "10.xml").write_text("<eCitation><MeSH><major>normal</major></eCitation>")  # malformed XML
    png(root / "images" / "CXR1_1_IM-0001-3001.png")
    png(root / "images" / "CXR1_1_IM-0001-4001.png", 40, 32)
    png(root / "images" / "sub" / "CXR2_IM-0652-1001.png")


_MIMIC_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new onset ascites  // eval for infection

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities that most likely represent nipple shadows.

 IMPRESSION:

 No acute cardiopulmonary process.
"""


def mimic_cxr(root: Path) -> None:
    header = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
              "Columns", "StudyDate", "StudyTime"]
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", header, [
        ["d-lat", 10000032, 50414267, "CHEST (PA AND LAT)", "LATERAL", 3056, 2544, 21800506, 213014.531],
        ["d-pa", 10000032, 50414267, "CHEST (PA AND LAT)", "PA", 3056, 2544, 21800506, 213014.531],
        ["d-ap", 10000032, 53189527, "CHEST (PORTABLE AP)", "AP", 2705, 2539, 21800626, 165500.312],
        ["d-missing", 10000764, 57375967, "CHEST (PA AND LAT)", "PA", 3056, 2544, 21321003, 120000],
        ["d-bad", "x", 50000000, "", "PA", 10, 10, 21800101, 0],
    ], gz=True)
    labels = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
              "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
              "Pneumothorax", "Support Devices"]
    first = {"Cardiomegaly": "1.0", "Edema": "-1.0", "Pleural Effusion": "0.0"}
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv", ["subject_id", "study_id", *labels], [
        [10000032, 50414267, *(first.get(n, "") for n in labels)],
        [10000032, 53189527, *("1.0" if n == "No Finding" else "" for n in labels)],
        [10000032, 59999999, *("2.0" if n == "Edema" else "" for n in labels)],  # not a CheXpert value
    ])
    write_csv(root / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"], [
        ["d-pa", 50414267, 10000032, "train"], ["d-ap", 53189527, 10000032, "test"]])
    study = root / "files" / "p10" / "p10000032"
    for rel in ("s50414267/d-pa.jpg", "s50414267/d-lat.jpg", "s53189527/d-ap.jpg"):
        jpg(study / rel)
    (study / "s50414267.txt").write_text(_MIMIC_REPORT)


def _vqa_rad_item(qid: int, image: str, organ: str, question: str, answer: object, kind: str, phrase: str,
                 url: str = "", **extra: str) -> dict:
    return {"qid": qid, "image_name": f"{image}.jpg", "image_case_url": url, "image_organ": organ,
            "question": question, "answer": answer, "answer_type": kind, "phrase_type": phrase, **extra}


def vqa_rad(root: Path) -> None:
    url = "https://medpix.nlm.nih.gov/case?id=48e1dd0e-8552-46ad-a354-5eb55be86de6"
    q = _vqa_rad_item
    items = [
        q(1, "synpic100", "CHEST", "Is there a pneumothorax?", "No", "CLOSED", "freeform", url),
        q(2, "synpic100", "CHEST ", "How many ribs are fractured?", 0, "OPEN", "test_para", url),
        q(3, "synpic200", "HEAD", "Is this an MRI?", "Yes", "CLOSED", "freeform", url),
        q(4, "synpic300", "CHEST", "Where is the mass?", "", "OPEN", "freeform"),
        q(5, "synpic300", "CHEST", "Is the heart enlarged?", "yes", "CLOSED", "freeform"),
        q(6, "synpic404", "CHEST", "Is this PA?", "yes", "CLOSED", "freeform"),
        q(7, "synpic100", "CHEST", "Is there a  pneumothorax", "no", "CLOSED", "frame", url),  # qid 1 again
        q(8, "synpic300", "CHEST", "Is the heart normal?", "no", "CLOSED", "frame"),
        q(9, "synpic300", "CHEST", "Is the heart normal?", "yes", "CLOSED", "frame"),  # contradicts qid 8
        q(10, "synpic300", "CHEST", "How wide is/are the heart? -open", "Half the thorax", "OPEN", "test_freeform",
          question_type="SIZE"),
        q(11, "synpic300", "CHEST", "How wide is/are the heart?", "half of the thorax", "OPEN", "test_para",
          question_type="SIZE"),  # qid 10 in other words
    ]
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps(items))
    for name in ("synpic100.jpg", "synpic200.jpg", "synpic300.jpg"):
        jpg(root / "VQA_RAD Image Folder" / name)


def hannover(root: Path) -> None:
    """Patient a: three dated films (two on one day) and one repeated row; b: one PA film; bad rows after."""
    header = ["patient_id", "image_id", "file", "view", "width", "height", "sex", "admission_offset",
              "icu_admission_offset", "icu_release_offset", "death_offset", "modality", "crp_offset", "crp_val",
              "po2_offset", "po2_val", "covid19_case"]
    write_csv(root / "metadata.csv", header, [
        ["a", "a3", "images/a3.jpg", "AP", 30, 24, "m", -3, -1.0, "", "", "CR", 0.0, 29.0, "", "", 1],
        ["a", "a0", "images/a0.jpg", "AP", 30, 24, "m", 0, 2.0, "", "", "CR", "", "", -1.0, 105.0, 1],
        ["a", "a3b", "images/a3b.jpg", "PA", 30, 24, "m", -3, -1.0, "", "", "DX", "", "", "", "", 1],
        ["a", "a0", "images/a0.jpg", "AP", 30, 24, "m", 0, 2.0, "", "", "CR", "", "", "", "", 1],
        ["b", "b1", "images/b1.jpg", "PA", 30, 24, "f", "", "", "", "", "DX", "", "", "", "", ""],
        ["c", "c1", "images/gone.jpg", "AP", 30, 24, "f", 0, "", "", "", "CR", "", "", "", "", 1],
        ["c", "c2", "images/c2.jpg", "AP", 30, 24, "f", "soon", "", "", "", "CR", "", "", "", "", 1],
        ["c", "c3", "images/c3.jpg", "LL", 30, 24, "f", 0, "", "", "", "CR", "", "", "", "", 1],
    ])
    for name in ("a3", "a0", "a3b", "b1", "c2", "c3"):
        jpg(root / "images" / f"{name}.jpg")


def slake(root: Path) -> None:
    def qa(img: str, question: str, answer: str, kind: str = "CLOSED", lang: str = "en",
           modality: str = "X-Ray", location: str = "Chest") -> dict:
        return {"img_id": int(img[5:]), "img_name": f"{img}/source.jpg", "question": question, "answer": answer,
                "answer_type": kind, "q_lang": lang, "modality": modality, "location": location, "qid": 0}

    train = [qa("xmlab1", "Does the picture contain lung?", "Yes"),
             qa("xmlab1", "Which organ is abnormal?", "Lung", kind="OPEN", location="Lung"),
             qa("xmlab1", "图中有肺吗?", "有", lang="zh"),
             qa("xmlab2", "Is this a CT?", "Yes", modality="CT", location="Abdomen"),
             qa("xmlab3", "Is the lung healthy?", "No")]
    test = [qa("xmlab1", "Where is the heart?", "Center", kind="OPEN"), qa("xmlab4", "Is it normal?", "")]
    (root / "train.json").write_text(json.dumps(train, ensure_ascii=False))
    (root / "test.json").write_text(json.dumps(test, ensure_ascii=False))
    jpg(root / "imgs" / "xmlab1" / "source.jpg", 100, 200)
    jpg(root / "imgs" / "xmlab2" / "source.jpg")
    jpg(root / "imgs" / "xmlab4" / "source.jpg")
    (root / "imgs" / "xmlab1" / "detection.json").write_text(json.dumps(
        [{"Heart": [80, 40, 40, 30]}, {"Left Lung": [120, 10, 60, 70]}, {"Right Lung": [1, 2]}]))
