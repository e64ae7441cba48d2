"""Shipping a trained model into the package: files copied in fp16, the operating point kept, the card written
from the run's own records."""
from __future__ import annotations

import json

import pytest

from cxrvlm import cli
from cxrvlm.metrics.memorisation import CopyGuard
from cxrvlm.models import load_model
from cxrvlm.models.copy_guard import COPY_GUARD_FILE, saved_copy_guard, write_copy_guard
from cxrvlm.models.question_types import QUESTION_TYPES_FILE, saved_question_types
from cxrvlm.train.config import StageConfig, TrainConfig


def _evaluation(folder, threshold: float, auroc: tuple[float, float, float]):
    """A validation evaluation's folder as `cxrvlm eval` writes it: metrics.json (TB AUROC with its interval, on
    two films) and operating_point.json."""
    folder.mkdir()
    value, low, high = auroc
    (folder / "metrics.json").write_text(json.dumps({
        "split": "val", "operating_point": {"threshold": threshold, "split": "val"},
        "main": {"classify": {"key": "tb_auroc", "value": value, "ci_low": low, "ci_high": high}},
        "tasks": {"classify": {"n": 2, "n_invalid": 0}}}))
    (folder / "operating_point.json").write_text(json.dumps({"threshold": threshold}))
    return folder


def test_ship_copies_the_model_and_writes_its_card(tmp_path, tiny) -> None:
    run, eval_dir, dest = tmp_path / "run", tmp_path / "eval", tmp_path / "weights" / "cxrvlm-tiny"
    model = tiny()
    model.save_pretrained(run / "final")
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"command": "cxrvlm curate ...", "counts": {
        "tasks": {"classify": {"train": 8, "val": 2, "test": 2}}}}))
    first = tmp_path / "first"  # the run this one continued
    first.mkdir()
    (first / "config.json").write_text(json.dumps(TrainConfig(
        data=str(data), batch_size=4, init_from={"vision.encoders.0": "probe.safetensors"}, augment_locations=True,
        stages=[StageConfig("warm-up", 5, freeze=["vision"]),
                StageConfig("joint", 15, lr_scale={"vision": 0.1}, mixture="fixed", mixture_ratios={"vqa": 1.0})]
    ).to_json()))
    (first / "metrics.jsonl").write_text(json.dumps({"step": 20, "loss": 3.0, "elapsed_s": 36.0}) + "\n")
    (run / "config.json").write_text(json.dumps(TrainConfig(
        model=str(first / "final"), data=str(data), batch_size=4, mixture="fixed", mixture_ratios={"classify": 1.0},
        stages=[StageConfig("balance", 20)]).to_json()))
    rows = [{"step": 10, "loss": 2.0, "elapsed_s": 30.0}, {"step": 10, "split": "val", "task_loss": {"classify": 1.5}},
            {"step": 20, "loss": 1.0, "elapsed_s": 60.0}, {"step": 20, "split": "val", "task_loss": {"classify": 0.9}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _evaluation(eval_dir, threshold=0.4, auroc=(0.75, 0.5, 0.9))
    filmed, moved = tmp_path / "filmed", tmp_path / "moved"
    for folder, perturb, value in ((filmed, None, 0.8), (moved, {"zoom": 0.93, "dx": 0.0, "dy": 0.0}, 0.71)):
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"split": "test", **({"perturb": perturb} if perturb else {}),
                                                         "tasks": {"classify": {"metrics": {"tb_auroc": value,
                                                                                            "tb_accuracy": 0.6}}}}))
    assert cli.main(["ship", str(run / "final"), str(eval_dir), str(dest), "--note", "Budget changed once.",
                     "--robustness", str(filmed), str(moved), "--reproduce", "make my-model"]) == 0
    assert json.loads((dest / "operating_point.json").read_text())["threshold"] == 0.4
    card = (dest / "MODEL_CARD.md").read_text()
    assert "| classify | tb_auroc | 0.750 | 0.500–0.900 | 2 | 0 |" in card
    assert "| classify | 1.500 | 0.900 |" in card and "Budget changed once." in card
    assert (f"- Run 1 of 2 (`{first}`, from `cxrvlm-tiny`, vision.encoders.0 initialised from `probe.safetensors`): "
            "20 steps of 4 (warm-up 5 steps with vision frozen; joint 15 steps with lr x0.1 for vision, mixture `fixed` "
            "{'vqa': 1.0}), mixture `inverse`, lr 0.001, "
            "location-aware zoom/shift augmentation, a small random affine on the images of tasks without "
            "coordinates, 0.01 h.") in card
    assert f"- Run 2 of 2 (`{run}`, from `{first / 'final'}`): 20 steps of 4 (balance 20 steps), mixture `fixed " in card
    assert "| test | as filmed | 0.800 | 0.600 |\n| test | zoom 0.93 | 0.710 | 0.600 |" in card
    assert "Research use only" in card and "Reproduce everything with `make my-model`" in card
    assert "trained from scratch on a CPU" in card  # a ConvNet and the native decoder: nothing pretrained
    shipped = load_model(dest)
    assert shipped.config == model.config
    assert sum(f.stat().st_size for f in dest.iterdir()) < sum(f.stat().st_size for f in (run / "final").iterdir())

    # a new evaluation of the shipped weights rewrites the validation section and the operating point only
    again = _evaluation(tmp_path / "eval-again", threshold=0.3, auroc=(0.8, 0.6, 0.95))
    (again / "box_calibration.json").write_text(json.dumps({"a": 2.0, "b": -1.0, "n": 40}))
    write_copy_guard(CopyGuard([7, 3]), again / COPY_GUARD_FILE)
    (again / QUESTION_TYPES_FILE).write_text(json.dumps({"tasks": {"vqa": {"types": {"view": {
        "n": 4, "accuracy": 0.75, "no_better_than_constant": False}}}}}))
    weights = (dest / "model.safetensors").read_bytes()
    assert cli.main(["ship", str(dest), str(again), str(dest), "--metrics-only"]) == 0
    refreshed = (dest / "MODEL_CARD.md").read_text()
    assert "| classify | tb_auroc | 0.800 | 0.600–0.950 | 2 | 0 |" in refreshed and "0.750" not in refreshed
    assert refreshed.split("## Validation metrics")[0] == card.split("## Validation metrics")[0]
    assert refreshed.split("## Limitations")[1] == card.split("## Limitations")[1]
    assert json.loads((dest / "operating_point.json").read_text())["threshold"] == 0.3
    assert json.loads((dest / "box_calibration.json").read_text())["a"] == 2.0  # copied beside the model
    assert saved_copy_guard(dest).hashes.tolist() == [3, 7]
    assert saved_question_types(dest)["vqa"]["view"]["accuracy"] == 0.75
    assert (dest / "model.safetensors").read_bytes() == weights


def test_ship_command_checks_its_inputs_before_copying(tmp_path, tiny, capsys) -> None:
    dest = tmp_path / "weights" / "cxrvlm-tiny"
    dest.mkdir(parents=True)
    (dest / "kept.txt").write_text("the built-in model before")
    assert cli.main(["ship", str(tmp_path / "run" / "final"), str(tmp_path / "eval"), str(dest)]) == 2
    assert "final: " in capsys.readouterr().err
    tiny().save_pretrained(tmp_path / "run" / "final")
    assert cli.main(["ship", str(tmp_path / "run" / "final"), str(tmp_path / "eval"), str(dest)]) == 2
    assert f"eval_dir: {tmp_path / 'eval' / 'metrics.json'} not found" in capsys.readouterr().err
    assert (dest / "kept.txt").is_file()  # nothing was replaced
    with pytest.raises(SystemExit) as e:
        cli.main(["ship", str(dest)])
    assert e.value.code == 2 and "required: eval_dir, dest" in capsys.readouterr().err


def test_card_describes_the_configured_encoders() -> None:
    from cxrvlm.models.config import VLMConfig
    from cxrvlm.models.ship import describe_encoders

    conv = VLMConfig(encoders=["convnet"], cnn_widths=[8, 16], cnn_blocks=1, image_size=64).to_json()
    assert describe_encoders(conv) == ("ConvNet encoder (ResNet-style, widths 8-16, 1 residual block(s) per stage) "
                                       "on 64 px grayscale input")
    fused = VLMConfig(encoders=["vit", "convnet"], merge_k=5).to_json()
    assert describe_encoders(fused).startswith("ViT encoder (6 layers, width 192, patch 16) + ConvNet encoder")
    assert describe_encoders(fused).endswith("tokens merged by 5")
    rad_dino = {"model_type": "dinov2", "num_hidden_layers": 12, "hidden_size": 768, "patch_size": 14}
    hf = VLMConfig(encoders=["hf"], image_size=518, hf_vision_config=rad_dino, hf_vision_mean=[0.53] * 3,
                   hf_vision_std=[0.26] * 3).to_json()
    assert describe_encoders(hf) == "pretrained dinov2 encoder (12 layers, width 768, patch 14) on 518 px grayscale input"
    from cxrvlm.models.ship import describe_decoder

    llm = {**hf, "decoder": "hf", "hf_text_config": {"model_type": "llama"}, "n_layer": 2, "n_embd": 64,
           "vocab_size": 1500}
    assert describe_decoder(llm) == ("pretrained llama decoder (2 layers, width 64, vocabulary 1500 incl. 1024 `<loc>` "
                                     "and 128 `<seg>` tokens)")
    assert describe_decoder(conv).startswith("GPT decoder (4 layers, width 256")


def test_card_says_whether_masks_were_refined_and_gives_both_figures(tmp_path) -> None:
    from cxrvlm.models.ship import masks_paragraph

    def metrics(refined: bool, iou: float) -> dict:
        return {"mask_refiner": refined, "tasks": {"segment": {"metrics": {"iou": iou, "dice": iou + 0.1}}}}

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "metrics.json").write_text(json.dumps(metrics(False, 0.6)))
    text = " ".join(masks_paragraph(metrics(True, 0.8), raw))
    assert "redrawn on the film by the mask refiner" in text and "IoU 0.800, Dice 0.900" in text
    assert "(`cxrvlm eval --no-mask-refiner`): IoU 0.600, Dice 0.700" in text
    assert "no mask refiner" in " ".join(masks_paragraph(metrics(False, 0.6), None))
    assert masks_paragraph({"tasks": {"classify": {}}}, None) == []


def test_the_card_says_how_many_reports_were_replaced_or_copied() -> None:
    from cxrvlm.models.ship import reports_paragraph

    lines = reports_paragraph({"tasks": {"report": {
        "metrics": {"head_checked": 20, "head_contradicted": 3},
        "memorisation": {"n": 20, "n_copied": 1, "run_words": 12}}}})
    assert "3 of 20 generated texts contradicted the label head" in lines[0]
    assert "1 of 20 generated texts copy a run of 12 words" in lines[0]
    assert reports_paragraph({"tasks": {"classify": {"metrics": {}}}}) == []
