from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Image as DImage
from PIL import Image
from transformers import ViTImageProcessorPil

from hf_lowrank.data import collate_pixel_values, load_digits_dataset, load_image_classification_data, preprocess


def test_digits_are_the_real_scikit_learn_digits_split_stratified():
    from sklearn.datasets import load_digits

    splits = load_digits_dataset(seed=0)
    assert len(splits["train"]) + len(splits["test"]) == 1797
    counts = np.bincount(splits["test"]["label"], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: 20% of each class
    assert splits["train"].features["label"].names == [str(d) for d in range(10)]
    image = np.asarray(splits["train"][0]["image"])  # (8, 8, 3) RGB
    assert image.shape == (8, 8, 3) and np.all(image[..., 0] == image[..., 1])
    # The pixels are those of a real digit of the same class (intensities 0..16 scaled to 0..255).
    digits = load_digits()
    scaled = np.round(digits.images * 255 / 16).astype(np.uint8)
    label = splits["train"][0]["label"]
    assert any(np.array_equal(image[..., 0], scaled[i]) for i in np.flatnonzero(digits.target == label))
    again = load_digits_dataset(seed=0)
    assert again["test"]["label"] == splits["test"]["label"]


def test_cached_and_on_the_fly_preprocessing_give_the_same_batches():
    data = load_image_classification_data(max_train_samples=40, max_test_samples=30)
    processor = ViTImageProcessorPil(
        size={"height": 8, "width": 8}, resample=0, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    cached = preprocess(data, processor)
    on_the_fly = preprocess(data, processor, cache_limit_gb=0)
    rows = [7, 3, 29]
    a = collate_pixel_values([cached["test"][i] for i in rows])
    b = collate_pixel_values([on_the_fly["test"][i] for i in rows])
    for key in ("pixel_values", "labels", "index"):
        torch.testing.assert_close(a[key], b[key])
    assert a["index"].tolist() == rows
    # Normalised as the processor says: (x / 255 - 0.5) / 0.5, from the raw image.
    raw = np.asarray(data.splits["test"][3]["image"], dtype=np.float32).transpose(2, 0, 1)
    torch.testing.assert_close(a["pixel_values"][1], torch.from_numpy((raw / 255 - 0.5) / 0.5))


def _image_folder(root, classes, count=4, seed=0):
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)  # name "": images straight in `root`
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def _paths(split):
    return [value["path"] for value in split.cast_column("image", DImage(decode=False))["image"]]


def _processor():
    return ViTImageProcessorPil(size={"height": 8, "width": 8}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def test_image_folder_with_one_class_says_classification_needs_two(tmp_path):
    folder = _image_folder(tmp_path / "images", ["cats"])
    with pytest.raises(ValueError) as error:
        load_image_classification_data(str(folder))
    message = str(error.value)
    assert message.startswith(
        f"image folder {str(folder)!r} has one class, 'cats' (4 images): classification needs at least two classes; "
        "put each class's images in its own subfolder"
    )
    assert "--label_column" not in message
    for split in ("train", "test"):
        _image_folder(tmp_path / "split" / split, ["cats"])
    with pytest.raises(ValueError, match="has one class, 'cats' \\(8 images\\)"):
        load_image_classification_data(str(tmp_path / "split"))


def test_image_folder_without_class_subfolders_says_so(tmp_path):
    _image_folder(tmp_path, [""])
    with pytest.raises(ValueError, match=r"has no class subfolders, so its images have no labels: classification"):
        load_image_classification_data(str(tmp_path))


def test_dataset_path_that_does_not_exist_says_so(tmp_path):
    missing = str(tmp_path / "no" / "such" / "images")
    with pytest.raises(ValueError) as error:
        load_image_classification_data(missing)
    assert str(error.value).startswith(
        f"dataset {missing!r} does not exist: there is no such local directory, and it is not a Hub dataset id"
    )
    assert "'digits', the directory of an image folder" in str(error.value)
    with pytest.raises(ValueError, match="no local directory 'no-such-dir/images' and no Hub dataset 'no-such-dir/"):
        load_image_classification_data("no-such-dir/images")  # a Hub id in form: tried offline, then explained
    (tmp_path / "labels.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"is a file, not a directory: give 'digits'"):
        load_image_classification_data(str(tmp_path / "labels.csv"))


@pytest.mark.parametrize("cache_limit_gb", [2.0, 0])
def test_corrupt_image_stops_preprocessing_naming_split_index_and_file(tmp_path, cache_limit_gb):
    folder = _image_folder(tmp_path / "images", ["ants", "bees"], count=5)
    bad = folder / "bees" / "3.png"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    data = load_image_classification_data(str(folder), seed=0)
    paths = {name: _paths(split) for name, split in data.splits.items()}
    split = next(name for name in ("train", "test") if str(bad) in paths[name])
    index = paths[split].index(str(bad))
    with pytest.raises(ValueError) as error:
        processed = preprocess(data, _processor(), cache_limit_gb=cache_limit_gb)
        [processed[name][i] for name in processed for i in range(len(processed[name]))]  # on the fly: read them
    message = str(error.value)
    assert message.startswith(f"cannot read the image of example {index} of the {split} split (file {str(bad)!r}): ")
    assert message.endswith(
        "Preprocessing stops here rather than skipping the example: remove or replace the file, then run again."
    )


def test_truncated_image_is_reported_as_well(tmp_path):
    folder = _image_folder(tmp_path / "images", ["ants", "bees"], count=3)
    data = load_image_classification_data(str(folder), seed=0)
    first = Path(_paths(data.splits["train"])[0])
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"^cannot read the image of example 0 of the train split \(file '.*\.png'\)"):
        preprocess(data, _processor())


def test_a_label_column_with_one_value_says_classification_needs_two(tmp_path):
    _image_folder(tmp_path, [""])
    (tmp_path / "metadata.csv").write_text("file_name,label\n" + "".join(f"{i}.png,cat\n" for i in range(4)))
    with pytest.raises(ValueError) as error:
        load_image_classification_data(str(tmp_path))
    assert str(error.value) == (
        f"the label column 'label' of dataset {str(tmp_path)!r} has one class, 'cat': classification needs at least "
        "two classes."
    )
