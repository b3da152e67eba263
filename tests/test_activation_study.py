"""The activation study's table is built from the shipped cards (tools/activation_study.py)."""

import shutil
import sys

from interp_core import paths
from interp_core.models import load_checkpoint, save_checkpoint

sys.path.insert(0, str(paths.PROJECT_ROOT))
from tools import activation_study  # noqa: E402


def test_the_table_reads_each_activation_from_its_card_and_names_what_is_missing(tmp_path, monkeypatch):
    shipped = paths.PROJECT_ROOT / "checkpoints" / "mnist-smallgap-int2-project.safetensors"
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(shipped, tmp_path / "checkpoints" / shipped.name)
    model, card = load_checkpoint(shipped)
    card.activation, card.name = "softplus", "mnist-smallgap-int2-softplus-project"
    card.metrics = {**card.metrics, "clean_accuracy": 0.123, "retested_accuracy": {
        **card.metrics["retested_accuracy"], "0.35": 0.456}}
    save_checkpoint(model, card, tmp_path / "checkpoints" / f"{card.name}.safetensors")
    monkeypatch.setattr(activation_study, "ROOT", tmp_path)

    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line
            for line in activation_study.report().splitlines()[2:]}
    assert set(rows) == {(m, a) for m in activation_study.METHODS for a in activation_study.ACTIVATIONS}
    relu, softplus = rows["int2", "relu"], rows["int2", "softplus"]
    shipped_card = load_checkpoint(shipped)[1]
    reported = shipped_card.metrics["pgd_accuracy"]["0.35"]
    assert f"| {reported:.3f} / {shipped_card.metrics['retested_accuracy']['0.35']:.3f} |" in relu
    assert "| 0.123 |" in softplus and f"| {reported:.3f} / 0.456 |" in softplus
    assert "not trained" in rows["pgd-at", "softplus"] and "not trained" in rows["pgd-at", "relu"]


def test_ig_norm_is_trained_with_both_activations_for_its_stated_epochs_and_the_others_only_with_softplus(
        tmp_path, monkeypatch):
    import pytest

    trained = []
    monkeypatch.setattr(activation_study, "ROOT", tmp_path)
    monkeypatch.setattr(activation_study, "train", lambda cfg, out, **kw: trained.append((cfg, out, kw["name"])))
    monkeypatch.setattr(activation_study, "ship", lambda out, name, *a: out)
    activation_study.train_model("ig-norm", "relu", None)
    activation_study.train_model("int", "softplus", None)
    (ig, ig_out, ig_name), (int_, _, int_name) = trained
    assert (ig.method, ig.activation, ig.epochs, ig.preset) == ("ig-norm", "relu", 1, "cpu")
    assert ig_name == "mnist-smallgap-ig-norm-project" and ig_out.parent == tmp_path / "runs" / "activation"
    assert (int_.activation, int_.epochs, int_name) == ("softplus", 8, "mnist-smallgap-int-softplus-project")
    with pytest.raises(SystemExit, match="shipped cpu-preset card"):
        activation_study.train_model("int", "relu", None)
    assert activation_study.training_note("ig-norm") == ", 1 epoch" and activation_study.training_note("int") == ""


def test_a_model_kept_for_the_study_only_is_read_from_its_folder_and_a_shipped_one_first(tmp_path, monkeypatch):
    shipped = paths.PROJECT_ROOT / "checkpoints" / "mnist-smallgap-int2-project.safetensors"
    model, card = load_checkpoint(shipped)
    card.activation, card.name = "softplus", "mnist-smallgap-int2-softplus-project"
    studied = tmp_path / activation_study.STUDIED
    studied.mkdir(parents=True)
    card.metrics = {**card.metrics, "clean_accuracy": 0.321}
    save_checkpoint(model, card, studied / f"{card.name}.safetensors")
    monkeypatch.setattr(activation_study, "ROOT", tmp_path)

    def softplus_row() -> str:
        return next(line for line in activation_study.report().splitlines()
                    if line.startswith("| int2 | softplus |"))

    assert "| 0.321 |" in softplus_row()
    (tmp_path / "checkpoints").mkdir()
    card.metrics = {**card.metrics, "clean_accuracy": 0.654}
    save_checkpoint(model, card, tmp_path / "checkpoints" / f"{card.name}.safetensors")
    assert "| 0.654 |" in softplus_row()
