"""The numbers on the shipped project-trained cards are reproduced by the evaluator.

The cards were measured with `evaluate robust --protocol paper` on the authors' 200-image seed-99
test subset; the committed demo sample holds exactly those images first, so this runs offline.
"""

import json

import pytest

from interp_core.cli import main
from interp_core.models import available_models

TOLERANCE = 3 / 200  # "within a few images" of 200


def _project_cards():
    return [e for e in available_models() if e.card.source == "project" and e.path.parent.name == "checkpoints"]


def _check(entry, eps_labels, capsys):
    card = entry.card
    grid = card.metrics["pgd_accuracy"]
    eps_arg = ",".join(eps_labels)
    assert main(["evaluate", "robust", "--model", entry.name, "--dataset", card.dataset, "--split", "demo",
                 "--protocol", "paper", "--eps", eps_arg, "--json", "--device", "cpu"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert len(results) == len(eps_labels)
    for label, row in zip(eps_labels, results):
        assert row["accuracy"] == pytest.approx(grid[label], abs=TOLERANCE), (entry.name, label)
        assert row["retested"] == pytest.approx(card.metrics["retested_accuracy"][label], abs=TOLERANCE), \
            (entry.name, label)  # the card's re-test column too


def test_every_project_card_names_its_recipe_and_measurements():
    entries = _project_cards()
    assert {e.name for e in entries} >= {
        f"mnist-smallgap-{m}-project" for m in ("normal", "pgd-at", "trades", "int", "int-1class", "int2")
    } | {f"cifar10-smallgap-{m}-project" for m in ("normal", "pgd-at", "int")}
    for entry in entries:
        text = entry.path.with_suffix(".md").read_text()
        assert "python -m interp_core train" in text and "evaluate robust" in text
        assert entry.card.metrics["pgd_accuracy"]


@pytest.mark.integration
def test_a_project_card_is_reproduced_by_the_evaluator(capsys):
    entry = next(e for e in _project_cards() if e.name == "mnist-smallgap-int-project")
    _check(entry, ["0.1", "0.3"], capsys)


@pytest.mark.slow
def test_every_project_card_is_reproduced_by_the_evaluator(capsys):
    for entry in _project_cards():
        _check(entry, list(entry.card.metrics["pgd_accuracy"]), capsys)


def test_every_project_card_command_rebuilds_the_config_its_model_was_trained_with():
    """The train command a card prints gives back, resolved for the run's length, the settings the
    checkpoint stores (all of them but the output path), so the card's recipe is the model's."""
    import re
    import shlex

    from interp_core.cli import build_parser
    from interp_core.cli.train import config_from_args
    from interp_core.training import TrainConfig

    for entry in _project_cards():
        if "preset" not in entry.card.hyperparameters:
            continue
        text = entry.path.with_suffix(".md").read_text()
        command = re.search(r"python -m interp_core train (.*)", text).group(1)
        args = shlex.split(command)
        parsed = build_parser().parse_args(["train", *args])
        assert parsed.out == f"checkpoints/{entry.name}.safetensors"
        total = int(entry.card.metrics["total_steps"])
        built = config_from_args(parsed).resolve(total)
        stored = TrainConfig.from_dict(entry.card.hyperparameters).resolve(total)
        assert built == stored, entry.name
