"""The encoder probe (`cxrvlm train-probe`) runs end to end on a curated fixture and reports a validation AUROC."""
from __future__ import annotations

import json

import pytest

from curated_fixtures import write_curated
from cxrvlm import cli
from cxrvlm.train import probe


def main(argv: list[str]) -> int:
    return cli.main(["train-probe", *argv])


def _fails(capsys, argv: list[str], message: str) -> None:
    """The probe exits 2 with `message` on stderr (the CLI turns a ValueError into a usage error)."""
    capsys.readouterr()
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_probe_prints_validation_auroc(tmp_path, capsys) -> None:
    data = write_curated(tmp_path / "curated")
    assert main(["--data", str(data), "--image-size", "32", "--epochs", "2", "--batch-size", "4",
                 "--set", "cnn_widths=[8,16]"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(0.0 <= r["val_auroc"] <= 1.0 for r in rows)
    assert rows[-1]["step"] == 5  # 2 epochs of 4 images in batches of 4 is 2 steps; the probe runs at least 5


def test_films_with_another_disease_as_tb_negatives(tmp_path, capsys) -> None:
    data = write_curated(tmp_path / "curated")
    disease = probe.disease_images(str(data), "train")
    assert disease and all(y == 0 for _, y in disease)  # the fixture's COVID-19 film, never a TB one
    assert not {p for p, _ in disease} & {p for p, y in probe.tb_images(str(data), "train") if y == 1}
    assert main(["--data", str(data), "--image-size", "32", "--epochs", "2", "--batch-size", "4",
                 "--set", "cnn_widths=[8,16]", "--disease-negatives"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(0.0 <= r["val_disease_as_tb"] <= 1.0 for r in rows)


def test_probe_needs_both_classes(tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for split in ("train", "val"):
        (empty / f"{split}.jsonl").write_text("")
    _fails(capsys, ["--data", str(empty)], "needs TB and normal")


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"), (["--lr", "-1"], "--lr must be positive"),
    (["--only-question", "projection"], "--only-question needs --labels closed"),
    (["--tb-weight", "0"], "--tb-weight must be positive, got 0.0"),
    (["--set", "cnn_widths"], "override 'cnn_widths' is not key=value")])
def test_bad_probe_arguments_are_usage_errors(tmp_path, capsys, argv, message) -> None:
    data = write_curated(tmp_path / "curated")
    _fails(capsys, ["--data", str(data), "--image-size", "32", *argv], message)


def test_probe_help_and_an_unknown_encoder(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "cxrvlm train-probe --data runs/curated" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--encoder", "resnet"])
    assert e.value.code == 2 and "invalid choice: 'resnet'" in capsys.readouterr().err


def test_saved_probe_encoder_starts_a_vlm_run(tmp_path, capsys) -> None:
    from safetensors.torch import load_file

    from cxrvlm.train.config import load_config
    from cxrvlm.data.split import TaskData, read_split
    from cxrvlm.train.setup import build_model

    data = write_curated(tmp_path / "curated")
    saved = tmp_path / "encoder.safetensors"
    assert main(["--data", str(data), "--image-size", "32", "--epochs", "1", "--batch-size", "4",
                 "--set", "cnn_widths=[8,16]", "--save", str(saved)]) == 0
    tiny = {"image_size": 32, "cnn_widths": [8, 16], "n_layer": 1, "n_embd": 32, "n_head": 2, "max_text_len": 96}
    cfg = load_config(None, [f"data={data}", "tokenizer_vocab_size=300", f"model_overrides={json.dumps(tiny)}",
                             f'init_from={json.dumps({"vision.encoders.0": str(saved)})}'])
    model = build_model(cfg, TaskData(read_split(data, "train")))
    state = model.vision.encoders[0].state_dict()
    for name, value in load_file(str(saved)).items():
        assert (state[name] == value).all(), name

    wrong = load_config(None, [f"data={data}", "tokenizer_vocab_size=300", f"model_overrides={json.dumps(tiny)}",
                               f'init_from={json.dumps({"decoder": str(saved)})}'])
    with pytest.raises(ValueError, match="does not match the module"):
        build_model(wrong, TaskData(read_split(data, "train")))
    wider = load_config(None, [f"data={data}", "tokenizer_vocab_size=300",
                               f"model_overrides={json.dumps({**tiny, 'cnn_widths': [8, 32]})}",
                               f'init_from={json.dumps({"vision.encoders.0": str(saved)})}'])
    with pytest.raises(ValueError, match="does not match the module"):
        build_model(wider, TaskData(read_split(data, "train")))


def test_probe_continues_from_saved_weights_and_rejects_foreign_ones(tmp_path, capsys) -> None:
    from safetensors.torch import load_file

    data = write_curated(tmp_path / "curated")
    first, second, other = (tmp_path / f"{n}.safetensors" for n in ("first", "second", "other"))
    small = ["--data", str(data), "--image-size", "32", "--epochs", "1", "--batch-size", "4"]
    assert main([*small, "--set", "cnn_widths=[8,16]", "--save", str(first)]) == 0
    # a learning rate too small to move anything: the continued encoder is the one it started from
    assert main([*small, "--set", "cnn_widths=[8,16]", "--lr", "1e-12", "--seed", "5", "--geometry",
                 "--init", str(first), "--save", str(second)]) == 0
    a, b = load_file(str(first)), load_file(str(second))
    assert all((a[k] - b[k]).abs().max() < 1e-6 for k in a)
    assert main([*small, "--set", "cnn_widths=[8,32]", "--save", str(other)]) == 0
    _fails(capsys, [*small, "--set", "cnn_widths=[8,16]", "--init", str(other)], "does not match the module")
    _fails(capsys, [*small, "--init", str(tmp_path / "missing.safetensors")], "missing.safetensors is not a file")


def test_closed_label_probe_learns_every_closed_question(tmp_path, capsys) -> None:
    from cxrvlm.train.probe import closed_questions

    data = write_curated(tmp_path / "curated")
    questions = closed_questions(str(data), "train")
    assert {q for _, q, _, _ in questions} >= {"What is the diagnosis of the X-ray image?"}
    assert all(0 <= y < len(c) for _, _, c, y in questions)
    assert main(["--data", str(data), "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--labels", "closed",
                 "--set", "cnn_widths=[8,16]"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(0.0 <= r["val_closed_accuracy"] <= 1.0 and 0.0 <= r["val_auroc"] <= 1.0 for r in rows)


def test_closed_probe_can_keep_one_question(tmp_path, capsys) -> None:
    data = write_curated(tmp_path / "curated")
    assert main(["--data", str(data), "--image-size", "32", "--epochs", "1", "--batch-size", "4", "--labels", "closed",
                 "--only-question", "diagnosis", "--set", "cnn_widths=[8,16]"]) == 0
    assert all("val_closed_accuracy" in json.loads(line) for line in capsys.readouterr().out.splitlines())
    _fails(capsys, ["--data", str(data), "--image-size", "32", "--epochs", "1", "--labels", "closed",
                    "--only-question", "no such question"], "no closed question contains 'no such question'")


def test_frozen_probe_of_a_pretrained_tower_trains_only_its_head(tmp_path, capsys) -> None:
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file

    data = write_curated(tmp_path / "curated")
    tower = transformers.Dinov2Model(transformers.Dinov2Config(
        image_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8))
    tower.save_pretrained(str(tmp_path / "rad-dino"))
    saved = tmp_path / "probe.safetensors"
    assert main(["--data", str(data), "--encoder", "hf", "--set", f"hf_vision_path={tmp_path / 'rad-dino'}",
                 "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--frozen", "--save", str(saved)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "val_auroc" in line]
    assert rows and all(0.0 <= r["val_auroc"] <= 1.0 for r in rows)
    for name, value in load_file(str(saved)).items():  # the tower is exactly the pretrained one
        assert (tower.state_dict()[name.removeprefix("model.")] == value).all(), name


def test_image_labels_train_an_encoder_and_a_label_head(tmp_path, capsys) -> None:
    from cxrvlm.tasks import labels
    from cxrvlm.tensorfile import read_tensors

    data = write_curated(tmp_path / "curated")
    items = probe.label_images(str(data), "train")
    assert items and all(len(y) == len(m) == len(labels.LABEL_SPACE) for _, y, m in items)
    encoder, head = tmp_path / "encoder.safetensors", tmp_path / "head.safetensors"
    assert main(["--data", str(data), "--image-size", "32", "--epochs", "2", "--batch-size", "4",
                 "--set", "cnn_widths=[8,16]", "--labels", "image", "--tb-weight", "3", "--save", str(encoder),
                 "--save-head", str(head)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(0.0 <= r["val_auroc"] <= 1.0 for r in rows if "val_auroc" in r)
    meta, weights = read_tensors(head)
    assert json.loads(meta["label_names"]) == list(labels.LABEL_SPACE)
    assert weights["weight"].shape == (len(labels.LABEL_SPACE), 16)
    assert not (tmp_path / "encoder.safetensors.state").exists()  # the resumable state goes once the run is saved


def test_an_interrupted_probe_resumes_from_its_state(tmp_path, capsys, monkeypatch) -> None:
    data = write_curated(tmp_path / "curated")
    saved = tmp_path / "encoder.safetensors"
    argv = ["--data", str(data), "--image-size", "32", "--epochs", "6", "--batch-size", "2",
            "--set", "cnn_widths=[8,16]", "--save", str(saved)]
    monkeypatch.setattr(probe, "SAVE_EVERY", 3)
    calls = {"n": 0}
    real = probe._Probe.loss_of_batch

    def crash_at_step_5(self):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("power cut")
        return real(self)

    monkeypatch.setattr(probe._Probe, "loss_of_batch", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert (tmp_path / "encoder.safetensors.state").is_file() and not saved.exists()
    capsys.readouterr()
    monkeypatch.setattr(probe._Probe, "loss_of_batch", real)
    assert main(argv) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[0] == {"resumed": str(tmp_path / "encoder.safetensors.state"), "step": 3}
    assert saved.is_file() and not (tmp_path / "encoder.safetensors.state").exists()
