"""Convert the curated paper networks into shipped checkpoints with model cards.

    python tools/convert_paper_networks.py   (needs ../shared: paper-networks and data)

Each network is evaluated on the full test set (MNIST: the official files; CIFAR-10: the shared
JPEG re-encoded copy, so a little off the official numbers) and written to
``checkpoints/<dataset>-<arch>-<method>-paper.safetensors`` plus a ``.md`` model card.
"""

import time

import torch

from interp_core import paths
from interp_core.data import load_dataset
from interp_core.metrics import accuracy
from interp_core.models import load_paper_network, save_checkpoint

CURATED = [
    "mnist_smallgap_normal_100", "mnist_smallgap_adv_100", "mnist_smallgap_trades_100",
    "mnist_smallgap_int_100", "mnist_smallgap_intone_100", "mnist_smallgap_int2_100",
    "cifar_smallgap_normal_200", "cifar_smallgap_adv_200", "cifar_smallgap_int_200",
    "cifar_wresnet_normal_200", "cifar_wresnet_int_200",
]

CARD = """# {name}

{description}

| field | value |
|---|---|
| architecture | `{arch}` ({in_channels} input channels, {num_classes} classes) |
| dataset | {dataset} |
| training method | `{method}` (authors' tag in the file name: `{tag}`) |
| training | {hyper} |
| converted from | `{converted_from}.npz` (`../shared/paper-networks`) |
| clean accuracy | {acc:.4f} on the full {dataset} test set ({n} images, {data_source}) |

Measured by `python tools/convert_paper_networks.py` on the project's 2-core CPU sandbox.
{cifar_note}
Load: `interp_core.models.load_model("{name}")` or `python -m interp_core accuracy --model {name} --dataset {dataset}`.

## Credit
{credit}
"""


def main() -> None:
    torch.set_num_threads(2)
    out = paths.checkpoints_dir()
    out.mkdir(exist_ok=True)
    for stem in CURATED:
        start = time.time()
        model, card = load_paper_network(paths.paper_networks_dir() / f"{stem}.npz")
        test = load_dataset(card.dataset, "test", download=False)
        acc = accuracy(model, test.images, test.labels)
        dataset_tag = "mnist" if card.dataset == "mnist" else "cifar10"
        card.name = f"{dataset_tag}-{card.arch}-{card.method}-paper"
        card.converted_from = stem
        card.metrics = {"clean_accuracy": round(acc, 4), "clean_accuracy_n": len(test)}
        save_checkpoint(model, card, out / f"{card.name}.safetensors")
        (out / f"{card.name}.md").write_text(CARD.format(
            **vars(card), tag=stem.split("_")[2], acc=acc, n=len(test), data_source=test.source,
            hyper=", ".join(f"{k} = {v:g}" for k, v in card.hyperparameters.items()),
            cifar_note="CIFAR-10 numbers use the JPEG re-encoded copy of the test set.\n" if card.dataset == "cifar10" else "",
        ))
        print(f"{card.name}: accuracy {acc:.4f} ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
