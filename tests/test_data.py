import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from interp_core import data
from interp_core.data import DatasetNotFound, load_dataset, load_image_folder, load_rimagenet, paper_subset
from interp_core.images import ImageIntakeError, read_image


@pytest.fixture
def no_shared(monkeypatch, tmp_path):
    """Point every default location at empty folders, as on a machine without ../shared."""
    monkeypatch.setenv("INTERP_CORE_SHARED_DIR", str(tmp_path / "no-shared"))
    monkeypatch.setenv("INTERP_CORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("INTERP_CORE_DATA_DIR", raising=False)
    return tmp_path


def _write_idx(path, array: np.ndarray):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root, n_train=6000, n_test=20):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_demo_sample_is_real_and_offline(no_shared):
    for name, shape in (("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))):
        demo = load_dataset(name, "demo")
        assert demo.images.shape == (300, *shape) and demo.images.dtype == torch.float32
        assert 0 <= demo.images.min() and demo.images.max() <= 1 and demo.images.std() > 0.1
        assert set(demo.labels.tolist()) == set(range(10))
        assert load_dataset(name, "demo", n=5).images.shape[0] == 5


def test_demo_sample_starts_with_the_paper_subset(full_data):
    test = load_dataset("mnist", "test")
    demo = load_dataset("mnist", "demo")
    index = paper_subset(200, len(test))
    assert torch.equal(demo.images[:200], test.images[index])
    assert torch.equal(demo.labels[:200], test.labels[index])


def test_idx_files_and_the_authors_split(no_shared):
    _fake_mnist(no_shared / "mydata")
    train = load_dataset("mnist", "train", data_dir=no_shared / "mydata")
    held = load_dataset("mnist", "heldout", data_dir=no_shared / "mydata")
    full = load_dataset("mnist", "train_full", data_dir=no_shared / "mydata")
    assert len(train) == 1000 and len(held) == 5000 and len(full) == 6000
    assert torch.equal(full.images[:5000], held.images) and torch.equal(full.images[5000:], train.images)
    assert load_dataset("mnist", "test", data_dir=no_shared / "mydata").source.endswith("raw")


def test_configured_directory_comes_before_the_shared_folder(no_shared, monkeypatch):
    _fake_mnist(no_shared / "no-shared" / "data", n_test=30)
    _fake_mnist(no_shared / "env", n_test=11)
    assert len(load_dataset("mnist", "test", download=False)) == 30
    monkeypatch.setenv("INTERP_CORE_DATA_DIR", str(no_shared / "env"))
    assert len(load_dataset("mnist", "test", download=False)) == 11


def test_cifar_official_batches(no_shared):
    folder = no_shared / "d" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        batch = {b"data": rng.integers(0, 256, (1200, 3072), dtype=np.uint8), b"labels": list(range(10)) * 120}
        (folder / name).write_bytes(pickle.dumps(batch))
    test = load_dataset("cifar10", "test", data_dir=no_shared / "d")
    assert test.images.shape == (1200, 3, 32, 32) and test.labels[:3].tolist() == [0, 1, 2]
    assert len(load_dataset("cifar10", "train", data_dir=no_shared / "d")) == 1000


def _jpeg_bytes(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_cifar_jpeg_archive_is_unpacked_once_into_the_cache(no_shared):
    root = no_shared / "d"
    root.mkdir()
    with tarfile.open(root / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        for label, cls in enumerate(data.CIFAR10_CLASSES):
            for i in range(2):
                payload = _jpeg_bytes((label * 25, 0, 0))
                info = tarfile.TarInfo(f"test/{cls}/{i:04d}.jpg")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    test = load_dataset("cifar10", "test", data_dir=root)
    assert test.images.shape == (20, 3, 32, 32)
    for img, label in zip(test.images, test.labels):  # labels follow the class folders
        assert abs(img[0].mean().item() * 255 - label.item() * 25) < 4
    assert (no_shared / "cache" / "cifar10-jpeg-test.npz").is_file()
    (root / "cifar10-jpeg.tar.gz").unlink()
    root.joinpath("cifar10-jpeg.tar.gz").write_bytes(b"")  # cache is used, archive not reread
    assert torch.equal(load_dataset("cifar10", "test", data_dir=root).images, test.images)


def test_cifar_image_tree_is_read_through_the_intake(no_shared):
    tree = no_shared / "d" / "cifar10" / "test"
    for label, cls in enumerate(data.CIFAR10_CLASSES):
        (tree / cls).mkdir(parents=True)
        Image.new("RGB", (32, 32), (label * 25, 7, 9)).save(tree / cls / "a.png")
    Image.new("L", (64, 48), 200).save(tree / "cat" / "b.bmp")  # another size and mode: converted
    test = load_dataset("cifar10", "test", data_dir=no_shared / "d")
    assert test.images.shape == (11, 3, 32, 32) and test.labels.tolist() == [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9]
    assert torch.equal(test.images[0, :, 0, 0], torch.tensor([0, 7, 9]) / 255.0)
    assert torch.allclose(test.images[4], torch.full((3, 32, 32), 200 / 255))
    (tree / "dog" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageIntakeError, match="dog/broken.png' is not an image"):
        load_dataset("cifar10", "test", data_dir=no_shared / "d")


def test_missing_dataset_says_where_it_looked(no_shared, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):  # the internet boundary: no network here
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetNotFound) as err:
        load_dataset("cifar10", "test", data_dir=no_shared / "empty")
    message = str(err.value)
    assert "empty" in message and "no-shared" in message and "--data-dir" in message and "torchvision" in message


def test_bad_arguments_and_malformed_images(no_shared, tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", "validation")
    with pytest.raises(ValueError, match="positive"):
        load_dataset("mnist", "demo", n=0)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageIntakeError, match="bad.png' is not an image"):
        read_image(tmp_path / "bad.png", "mnist")


def test_image_folder_skips_non_images(tmp_path):
    for cls, color in (("cats", 200), ("dogs", 20)):
        (tmp_path / "f" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30), (color, color, color)).save(tmp_path / "f" / cls / f"{i}.png")
    (tmp_path / "f" / "cats" / "notes.txt").write_text("not an image")
    ds = load_image_folder(tmp_path / "f", "cifar10")
    assert ds.images.shape == (6, 3, 32, 32) and ds.class_names == ["cats", "dogs"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.images[:3].mean() > 0.7 and ds.images[3:].mean() < 0.1
    assert ds.notes[0] == "cats/0.png: resized from 40×30 to 32×32 (aspect ratio not kept)"
    assert any(n.startswith("skipped: 'cats/notes.txt' is not an image") for n in ds.notes)
    assert len(load_image_folder(tmp_path / "f", "mnist", n=4)) == 4
    assert load_image_folder(tmp_path / "f", "mnist", n=4).images.shape == (4, 1, 28, 28)
    with pytest.raises(DatasetNotFound):
        load_image_folder(tmp_path / "nothing", "cifar10")


def test_rimagenet_maps_imagenet_indices_to_super_classes(tmp_path):
    root = tmp_path / "val"
    for i in range(1000):
        (root / f"n{i:08d}").mkdir(parents=True)
    for index in (151, 268, 281, 30, 389):  # dog, dog, cat, frog, fish
        Image.new("RGB", (64, 64)).save(root / f"n{index:08d}" / "a.jpeg")
    Image.new("RGB", (64, 64)).save(root / f"n{500:08d}" / "a.jpeg")  # outside every range
    ds = load_rimagenet(root, size=32)
    names = [ds.class_names[i] for i in ds.labels]
    assert sorted(names) == ["cat", "dog", "dog", "fish", "frog"]
    assert ds.images.shape == (5, 3, 32, 32)
