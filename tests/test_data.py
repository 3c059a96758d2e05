import numpy as np
import torch
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
