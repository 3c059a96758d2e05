"""The train/test splits of a loaded classification source, shared by the image and text loaders: which split is
which, labels as a `ClassLabel`, an 80/20 stratified split when there is no test split, truncation, empty checks."""

from dataclasses import dataclass

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Value


__all__ = [
    "TEST_SPLITS",
    "TRAIN_SPLITS",
    "SplitOptions",
    "as_class_labels",
    "classification_splits",
    "find_test_split",
    "pick_split",
    "require_examples",
    "stratified_split",
    "truncate_splits",
    "validation_count",
    "validation_indices",
]

TRAIN_SPLITS = ("train", "training")
TEST_SPLITS = ("test", "validation", "valid", "val", "eval")
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class SplitOptions:
    """How a source's splits are chosen and cut: the train and test split names (None: the usual ones, or an 80/20
    stratified split of the train split with `seed`), and the rows kept of each (None: all)."""

    train_split: str | None = None
    test_split: str | None = None
    seed: int = 0
    max_train_samples: int | None = None
    max_test_samples: int | None = None


def pick_split(splits: DatasetDict, candidates: tuple[str, ...], kind: str, requested: str | None) -> str:
    """The name of the `kind` split (``"train"``, ``"test"``): `requested` when it is a split, else the first of
    `candidates` present; a ValueError naming ``--{kind}_split`` and the splits found otherwise."""
    if requested is not None:
        if requested not in splits:
            raise ValueError(f"{kind}_split={requested!r} is not a split; splits found: {list(splits)}.")
        return requested
    for name in candidates:
        if name in splits:
            return name
    raise ValueError(f"no {kind} split among {list(splits)}; name one with --{kind}_split.")


def as_class_labels(splits: DatasetDict, label: str) -> DatasetDict:
    """`splits` with the `label` column a `ClassLabel`: kept when it is one; string or integer labels become one with
    the sorted distinct values of all splits as names (integers sorted as numbers, named ``"3"``, ``"7"``...).
    A missing label or another feature type is a ValueError naming the column."""
    feature = next(iter(splits.values())).features[label]
    if isinstance(feature, ClassLabel):
        return splits
    is_int = isinstance(feature, Value) and feature.dtype.startswith(("int", "uint"))
    if not (is_int or (isinstance(feature, Value) and feature.dtype in ("string", "large_string"))):
        raise ValueError(
            f"the label column {label!r} is of type {feature!r}: give a ClassLabel, string or integer column with "
            "--label_column."
        )
    values = {name: list(split[label]) for name, split in splits.items()}
    for name, column in values.items():
        if None in column:
            raise ValueError(
                f"the label column {label!r} has no value in {column.count(None)} rows of the {name} split "
                f"(first: row {column.index(None)}): give every example a label."
            )
    names = [str(value) for value in sorted(set().union(*values.values()))]
    if is_int:  # through strings, so that 3 and 7 become classes 0 and 1, not indices 3 and 7
        splits = splits.cast_column(label, Value("string"))
    return splits.cast_column(label, ClassLabel(names=names))


def find_test_split(splits: DatasetDict, test_split: str | None = None) -> str | None:
    """The name of the test split: `test_split` (a ValueError naming ``--test_split`` when it is not a split), else
    the first of the usual names (``test``, ``validation``...) present, else None (then the train split is split)."""
    if test_split is None and not any(name in splits for name in TEST_SPLITS):
        return None
    return pick_split(splits, TEST_SPLITS, "test", test_split)


def stratified_split(train: Dataset, label: str, dataset: str, seed: int = 0) -> DatasetDict:
    """``{"train", "test"}``: `train` split 80/20, stratified by its `ClassLabel` column `label`, with `seed`.
    A ValueError, naming `dataset`, when it is empty or cannot be split so (a class with a single example, fewer
    test examples than classes)."""
    require_examples(DatasetDict({"train": train}), dataset)
    names = train.features[label].names
    counts = np.bincount(np.asarray(train[label], dtype=np.int64), minlength=len(names))  # (classes,)
    single = [f"{names[i]!r} ({counts[i]})" for i in np.flatnonzero(counts == 1)]
    if single:
        raise ValueError(
            f"dataset {dataset!r} has no test split, and {len(single)} of its {len(names)} classes have a single "
            f"example ({', '.join(single[:10])}{' ...' if len(single) > 10 else ''}): an 80/20 split stratified by "
            f"{label!r} needs at least 2 examples of each class (one per split). Give more examples of those "
            "classes, drop them, or name a test split with --test_split."
        )
    try:
        return train.train_test_split(test_size=TEST_FRACTION, stratify_by_column=label, seed=seed)
    except ValueError as error:
        raise ValueError(
            f"dataset {dataset!r} has no test split, and its {len(train)} train examples cannot be split 80/20 "
            f"stratified by {label!r}: {error} Name a test split with --test_split, or give more examples of each "
            "class."
        ) from error


def validation_count(split: float, num_train: int) -> int:
    """The validation examples `split` asks for: a fraction (0 < split < 1) of `num_train`, rounded, or a count."""
    return round(split * num_train) if split < 1 else int(split)


def validation_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` rows of a training split with `labels` (shape (N,), class ids) for a validation split, stratified:
    each class gets its share of `count` (largest remainders), at least one, and keeps at least one row for
    training; the rows of each class drawn by a generator seeded with `seed`. Sorted row numbers, shape (count,).
    A ValueError when that cannot be done (fewer rows than classes, a class with a single row)."""
    classes, counts = np.unique(labels, return_counts=True)
    if count < len(classes):
        raise ValueError(
            f"a validation split of {count} example(s) cannot hold one of each of the {len(classes)} classes; ask "
            f"for at least {len(classes)}"
        )
    single = classes[counts < 2]
    if len(single):
        raise ValueError(
            f"{len(single)} class(es) have a single training example (class id(s) {single[:10].tolist()}), which a "
            "stratified validation split would take from training"
        )
    if count > len(labels) - len(classes):
        raise ValueError(
            f"a validation split of {count} of {len(labels)} training examples leaves some class nothing to train "
            f"on; ask for at most {len(labels) - len(classes)}"
        )
    share = counts / counts.sum() * count  # (classes,)
    taken = np.clip(np.floor(share).astype(int), 1, counts - 1)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    while taken.sum() != count:  # largest remainders first, within each class's bounds [1, count - 1]
        missing = count - taken.sum()
        step = 1 if missing > 0 else -1
        movable = [p for p in order if 1 <= taken[p] + step <= counts[p] - 1]
        for position in movable[: abs(missing)]:
            taken[position] += step
    generator = np.random.default_rng(seed)
    rows = [generator.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, taken)]
    return np.sort(np.concatenate(rows))


def truncate_splits(
    splits: DatasetDict, max_train_samples: int | None = None, max_test_samples: int | None = None
) -> DatasetDict:
    """`splits` with the train and test splits cut to their first `max_*_samples` rows (None: all of them)."""
    limits = {"train": max_train_samples, "test": max_test_samples}
    return DatasetDict(
        {
            name: split if limits.get(name) is None else split.select(range(min(limits[name], len(split))))
            for name, split in splits.items()
        }
    )


def require_examples(splits: DatasetDict, dataset: str) -> None:
    """Raise a ValueError naming the first split of `splits` that has no rows."""
    for name, split in splits.items():
        if len(split) == 0:
            raise ValueError(f"the {name} split of {dataset!r} is empty.")


def _require_two_classes(feature: ClassLabel, label: str, dataset: str) -> None:
    if len(feature.names) < 2:
        found = f"one class, {feature.names[0]!r}" if feature.names else "no classes"
        raise ValueError(
            f"the label column {label!r} of dataset {dataset!r} has {found}: classification needs at least two "
            "classes."
        )


def classification_splits(
    splits: DatasetDict, train_name: str, label: str, dataset: str, options: SplitOptions = SplitOptions()
) -> tuple[DatasetDict, list[str]]:
    """The ``{"train", "test"}`` splits of a loaded source (train = `train_name`) and the label names (index =
    class id): the labels made a `ClassLabel` (`as_class_labels`), at least two classes, the test split found or made
    (`find_test_split`, else `stratified_split` with `options.seed`), cut to `options.max_*_samples`, neither
    empty. `dataset` names the source in the messages."""
    test_name = find_test_split(splits, options.test_split)
    chosen = DatasetDict({"train": splits[train_name]} | ({"test": splits[test_name]} if test_name else {}))
    chosen = as_class_labels(chosen, label)
    feature = chosen["train"].features[label]
    _require_two_classes(feature, label, dataset)
    if test_name is None:
        chosen = stratified_split(chosen["train"], label, dataset, options.seed)
    chosen = truncate_splits(chosen, options.max_train_samples, options.max_test_samples)
    require_examples(chosen, dataset)
    return chosen, list(feature.names)
