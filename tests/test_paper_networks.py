"""The port is faithful: every released network's logits are the grid mean of its CAM, and its
clean accuracy on the full test set (through the CLI) is that of a working network. Needs ../shared."""

import json

import pytest
import torch

from interp_core.cli import main
from interp_core.data import load_dataset
from interp_core.models import load_paper_network

pytestmark = pytest.mark.shared

# Floors far above chance (10%) and below every released network's accuracy, so a wrong port
# (padding, layout, activation order) fails while the measured numbers are printed in full.
FLOORS = {"mnist": 0.80, "cifar": 0.35}


def _networks(folder, dataset):
    return sorted(p for p in folder.glob(f"{dataset}_*.npz") if "wresnet" not in p.name)


def test_logits_equal_cam_grid_mean_for_every_network(paper_networks_dir):
    x = load_dataset("cifar10", "demo", n=8).images
    m = load_dataset("mnist", "demo", n=8).images
    for path in sorted(paper_networks_dir.glob("*.npz")):
        model, card = load_paper_network(path)
        inputs = m if card.dataset == "mnist" else x
        with torch.no_grad():
            assert torch.allclose(model.cam(inputs).mean(dim=(2, 3)), model(inputs), atol=1e-4), path.name


@pytest.mark.parametrize("dataset", ["mnist", "cifar"])
def test_full_test_accuracy_through_the_cli(dataset, paper_networks_dir, full_data, capsys):
    name = "mnist" if dataset == "mnist" else "cifar10"
    for path in _networks(paper_networks_dir, dataset):
        assert main(["accuracy", "--model", str(path), "--dataset", name, "--json"]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["n"] == 10000 and result["accuracy"] > FLOORS[dataset], (path.name, result)
        if path.stem == "mnist_smallgap_normal_100":
            assert result["accuracy"] > 0.98  # docs/method.md#networks: a little above 98%


@pytest.mark.slow
def test_wresnet_full_test_accuracy_through_the_cli(paper_networks_dir, full_data, capsys):
    for path in sorted(paper_networks_dir.glob("cifar_wresnet_*.npz")):
        assert main(["accuracy", "--model", str(path), "--dataset", "cifar10", "--json"]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["accuracy"] > 0.6, (path.name, result)
