"""Regenerate the committed demo sample: ``python tools/make_demo_data.py`` (needs ../shared/data).

Per dataset, the first 300 test images of the authors' evaluation order (numpy seed-99 permutation
of the test set), so the first 200 are the paper's 200-image evaluation subset.
"""

import numpy as np

from interp_core.data import DEMO_DIR, load_dataset, paper_subset

N = 300

for name in ("mnist", "cifar10"):
    test = load_dataset(name, "test", download=False)
    index = paper_subset(N, len(test))
    images = (test.images[index] * 255).round().to(dtype=__import__("torch").uint8).numpy()
    DEMO_DIR.mkdir(exist_ok=True)
    np.savez_compressed(DEMO_DIR / f"{name}_demo.npz", images=images, labels=test.labels[index].numpy(),
                        test_indices=index)
    print(name, images.shape, (DEMO_DIR / f"{name}_demo.npz").stat().st_size, "bytes")
