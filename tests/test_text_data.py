import json
import re
from collections import Counter

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from PIL import Image
from transformers import BertTokenizer, ViTImageProcessorPil

from hf_lowrank.data import (
    ImageClassificationData,
    TextClassificationData,
    collate_examples,
    collate_pixel_values,
    dataset_modality,
    find_text_columns,
    load_classification_data,
    load_image_classification_data,
    load_text_classification_data,
    preprocess,
    preprocess_text,
)


WORDS = ["a", "great", "good", "fine", "bad", "awful", "movie", "film", "plot", "very", "not", "the", "and", "was"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


def _reviews(counts, seed=0):
    """(text, label) rows: `counts[label]` rows of each label, texts of 1 to 8 vocabulary words, all distinct."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, count in counts.items():
        for i in range(count):
            words = rng.choice(WORDS, size=rng.integers(1, 9))
            rows.append((f"{' '.join(words)} {label} {i}", label))  # the suffix makes every text distinct
    return rows


def _tokenizer(tmp_path, **kwargs):
    vocab = tmp_path / "vocab.txt"
    tokens = SPECIAL + WORDS + ["pos", "neg", "neu"] + [str(i) for i in range(40)]
    vocab.write_text("\n".join(tokens) + "\n")
    # transformers 5: the vocabulary is `vocab` (a path or a dict); `vocab_file=` would be ignored silently.
    tokenizer = BertTokenizer(vocab=str(vocab), **kwargs)
    assert len(tokenizer) == len(tokens)  # the file was read, not just the five special tokens
    return tokenizer


def _image_folder(root, classes, count=3):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def _rows(data, split):
    names = data.label_names
    return [(t, names[y]) for t, y in zip(data.splits[split][data.text_column], data.splits[split][data.label_column])]


# Loading: columns, labels, splits.


def test_csv_with_string_labels_becomes_a_sorted_class_label_split_80_20_stratified(tmp_path):
    rows = _reviews({"pos": 20, "neu": 10, "neg": 30})
    data = load_text_classification_data(str(_csv(tmp_path / "reviews.csv", rows)), seed=3)
    assert isinstance(data, TextClassificationData)
    assert (data.text_column, data.label_column) == ("text", "label")
    assert data.label_names == ["neg", "neu", "pos"]
    assert isinstance(data.splits["train"].features["label"], ClassLabel)
    assert data.splits["train"].features["label"].names == ["neg", "neu", "pos"]
    train, test = _rows(data, "train"), _rows(data, "test")
    assert sorted(train + test) == sorted(rows) and not set(train) & set(test)  # a partition, labels kept
    assert Counter(label for _, label in test) == {"pos": 4, "neu": 2, "neg": 6}  # 20% of each class
    again = load_text_classification_data(str(tmp_path / "reviews.csv"), seed=3)
    assert _rows(again, "test") == test and _rows(again, "train") == train
    for seed in (0, 1, 2):  # a plain shuffle gives these counts for one seed in six or so, not for every seed
        other = load_text_classification_data(str(tmp_path / "reviews.csv"), seed=seed)
        assert set(_rows(other, "test")) != set(test)
        assert Counter(label for _, label in _rows(other, "test")) == {"pos": 4, "neu": 2, "neg": 6}


def test_max_samples_keep_the_first_rows_of_each_split(tmp_path):
    path = str(_csv(tmp_path / "reviews.csv", _reviews({"pos": 10, "neg": 10})))
    full = load_text_classification_data(path)
    cut = load_text_classification_data(path, max_train_samples=5, max_test_samples=3)
    assert _rows(cut, "train") == _rows(full, "train")[:5]
    assert _rows(cut, "test") == _rows(full, "test")[:3]
    assert len(load_text_classification_data(path, max_train_samples=1000).splits["train"]) == 16


def test_columns_found_by_name_when_types_do_not_decide(tmp_path):
    # Three string columns: the label is found by its usual name, the text by its usual name among the other two.
    rows = [(f"title {i}", f"review {i}", "pos" if i % 2 else "neg") for i in range(10)]
    path = _csv(tmp_path / "reviews.csv", rows, header="title,review,sentiment")
    data = load_text_classification_data(str(path))
    assert (data.text_column, data.label_column) == ("review", "sentiment")
    assert data.label_names == ["neg", "pos"]


def test_jsonl_columns_found_by_type_and_integer_labels_become_classes(tmp_path):
    # `phrase` is no usual text name: it is the single string column besides the label. Labels 3 and 7 become
    # classes 0 and 1 named "3" and "7" (not indices 3 and 7).
    records = [{"phrase": f"good movie {i}", "label": 7 if i % 3 else 3, "stars": i} for i in range(15)]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    data = load_text_classification_data(str(path), seed=0)
    assert (data.text_column, data.label_column) == ("phrase", "label")
    assert data.label_names == ["3", "7"]
    expected = {r["phrase"]: ["3", "7"].index(str(r["label"])) for r in records}
    for split in data.splits.values():
        assert {t: y for t, y in zip(split["phrase"], split["label"])} == {t: expected[t] for t in split["phrase"]}


def test_class_label_and_text_found_by_type():
    features = Features({"words": Value("string"), "y": ClassLabel(names=["a", "b"]), "n": Value("int64")})
    dataset = Dataset.from_dict({"words": ["x", "y"], "y": [0, 1], "n": [1, 2]}, features=features)
    assert find_text_columns(dataset) == ("words", "y")


def test_tsv_is_read_tab_separated_and_a_directory_keeps_its_test_split(tmp_path):
    rows = [(f"good, very good {i}", "pos") for i in range(4)] + [(f"bad, not good {i}", "neg") for i in range(4)]
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    data = load_text_classification_data(str(tsv), seed=0)
    assert sorted(_rows(data, "train") + _rows(data, "test")) == sorted(rows)  # commas are text, not separators
    folder = tmp_path / "folder"
    folder.mkdir()
    rows = [(text.replace(",", ""), label) for text, label in rows]
    _csv(folder / "train.csv", rows)
    _csv(folder / "test.csv", [("the plot", "neg"), ("a film", "pos")])
    data = load_text_classification_data(str(folder))
    assert _rows(data, "train") == rows and _rows(data, "test") == [("the plot", "neg"), ("a film", "pos")]


# Loading: errors.


def test_unsupported_extension_names_the_file_and_the_supported_ones(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("text,label\n")
    with pytest.raises(ValueError) as error:
        load_text_classification_data(str(path))
    assert str(error.value).startswith(
        f"dataset {str(path)!r} is a file with extension '.txt', which is not supported"
    )
    assert "supported files are .csv, .tsv, .json, .jsonl" in str(error.value)


def test_a_named_column_that_is_missing_lists_the_columns(tmp_path):
    path = str(_csv(tmp_path / "reviews.csv", _reviews({"pos": 5, "neg": 5})))
    with pytest.raises(ValueError) as error:
        load_text_classification_data(path, text_column="body")
    assert str(error.value) == "text_column='body' is not a column of the dataset; columns found: ['text', 'label']."
    with pytest.raises(
        ValueError, match=r"^label_column='stars' is not a column .* columns found: \['text', 'label'\]"
    ):
        load_text_classification_data(path, label_column="stars")
    with pytest.raises(ValueError, match=r"^text_column='label' is also the label column"):
        load_text_classification_data(path, text_column="label")


def test_columns_that_cannot_be_found_say_which_argument_names_them(tmp_path):
    path = _csv(tmp_path / "reviews.csv", [(f"t{i}", f"s{i}", str(i % 2)) for i in range(6)], header="a,b,c")
    with pytest.raises(ValueError) as error:
        load_text_classification_data(str(path))
    assert "cannot find the label column" in str(error.value) and "columns found: ['a', 'b', 'c']" in str(error.value)
    assert str(error.value).endswith("Name it with --label_column.")
    with pytest.raises(ValueError, match=r"^cannot find the text column: no single string feature .*--text_column"):
        load_text_classification_data(str(path), label_column="c")  # a, b: two strings, neither a usual name
    with pytest.raises(ValueError, match=r"the text column 'c' is not a column of strings.*\(a, b\) with --text_col"):
        load_text_classification_data(str(path), text_column="c", label_column="a")  # c holds 0/1: int64


def test_one_class_says_classification_needs_two(tmp_path):
    path = str(_csv(tmp_path / "reviews.csv", [(f"good {i}", "pos") for i in range(5)]))
    with pytest.raises(ValueError) as error:
        load_text_classification_data(path)
    assert str(error.value) == (
        f"the label column 'label' of dataset {path!r} has one class, 'pos': classification needs at least two "
        "classes."
    )


def test_a_class_too_small_to_stratify_and_a_missing_text_are_named(tmp_path):
    path = str(_csv(tmp_path / "reviews.csv", _reviews({"pos": 6}) + [("bad", "neg")]))
    with pytest.raises(
        ValueError, match=r"1 of its 2 classes have a single example \('neg' \(1\)\): an 80/20 split .*--test_split"
    ):
        load_text_classification_data(path)
    path = str(_csv(tmp_path / "holes.csv", [("good", "pos"), ("", "neg")] * 5))
    with pytest.raises(ValueError, match=r"^the text column 'text' of dataset .* has no text in \d rows of the "):
        load_text_classification_data(path)


def test_text_dataset_to_an_image_teacher_names_its_columns(tmp_path):
    path = str(_csv(tmp_path / "reviews.csv", _reviews({"pos": 5, "neg": 5})))
    with pytest.raises(ValueError) as error:
        load_classification_data(path, "image")
    assert str(error.value) == (
        f"dataset {path!r} is a text dataset (columns: text (string), label (string)), but the teacher is an image "
        "classifier: give an image dataset, or a text teacher."
    )
    with pytest.raises(ValueError, match=r"is a file, not a directory: give 'digits'"):
        load_image_classification_data(path)  # the image loader refuses files, as it always has


def test_image_dataset_to_a_text_teacher_names_its_columns(tmp_path):
    folder = str(_image_folder(tmp_path / "images", ["ants", "bees"]))
    with pytest.raises(ValueError) as error:
        load_classification_data(folder, "text")
    assert str(error.value) == (
        f"dataset {folder!r} is an image dataset (columns: image (Image), label (ClassLabel)), but the teacher is a "
        "text classifier: give a text dataset, or an image teacher."
    )
    with pytest.raises(ValueError) as error:
        load_classification_data("digits", "text")
    assert str(error.value) == (
        "dataset 'digits' is an image dataset (columns: image (Image), label (ClassLabel)), but the teacher is a text "
        "classifier: give a text dataset, or an image teacher."
    )
    with pytest.raises(ValueError, match=r"^dataset 'digits' is an image dataset .*, not a text dataset"):
        load_text_classification_data("digits")


def test_load_classification_data_gives_the_teachers_kind(tmp_path):
    path = str(_csv(tmp_path / "reviews.csv", _reviews({"pos": 5, "neg": 5})))
    text = load_classification_data(path, "text", seed=1)
    assert isinstance(text, TextClassificationData)
    assert _rows(text, "test") == _rows(load_text_classification_data(path, seed=1), "test")
    folder = str(_image_folder(tmp_path / "images", ["ants", "bees"], count=5))
    image = load_classification_data(folder, "image", seed=1)
    expected = load_image_classification_data(folder, seed=1)
    assert isinstance(image, ImageClassificationData) and image.label_names == ["ants", "bees"]
    assert image.splits["test"]["label"] == expected.splits["test"]["label"]
    with pytest.raises(
        ValueError, match=r"^modality='audio' is not a kind of teacher: give one of \['image', 'text'\]"
    ):
        load_classification_data(path, "audio")
    with pytest.raises(ValueError, match=r"^text_column='text' is for a text teacher, but the teacher is an image"):
        load_classification_data("digits", "image", text_column="text")


def test_dataset_modality():
    image = load_image_classification_data(max_train_samples=4, max_test_samples=4).splits
    assert dataset_modality(image) == "image"
    text = DatasetDict({"train": Dataset.from_dict({"text": ["a"], "label": [0]})})
    assert dataset_modality(text) == "text"
    numbers = DatasetDict({"train": Dataset.from_dict({"x": [1.5], "label": [0]})})
    with pytest.raises(ValueError) as error:
        dataset_modality(numbers)
    assert "neither an Image column nor a string column" in str(error.value)
    assert str(error.value).endswith("columns found: x (float64), label (int64).")


# Preprocessing and collation.


def _directory_with_a_long_test_text(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    train = [("good movie", "pos"), ("bad film", "neg"), ("a very good film", "pos"), ("awful", "neg")]
    test = [("not good and not fine and the plot was bad", "neg"), ("great", "pos")]
    _csv(folder / "train.csv", train)
    _csv(folder / "test.csv", test)
    return load_text_classification_data(str(folder))


def _expected_length(tokenizer, data, max_length):
    texts = [t for split in data.splits.values() for t in split[data.text_column]]
    return min(max(len(tokenizer(t)["input_ids"]) for t in texts), max_length)


def test_preprocess_text_pads_every_split_to_the_longest_example(tmp_path):
    tokenizer = _tokenizer(tmp_path)
    data = _directory_with_a_long_test_text(tmp_path)
    longest_train = max(len(tokenizer(t)["input_ids"]) for t in data.splits["train"]["text"])
    length = _expected_length(tokenizer, data, 128)
    assert length == 12 and longest_train == 6  # the longest text is a test one: one length for all splits
    processed = preprocess_text(data, tokenizer, max_length=128)
    for name, split in data.splits.items():
        rows = processed[name]
        assert rows.column_names == ["input_ids", "attention_mask", "token_type_ids", "labels", "index"]
        for i, (text, label) in enumerate(zip(split["text"], split["label"])):
            expected = tokenizer(text, padding="max_length", max_length=length, truncation=True)
            row = rows[i]
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                assert row[key].dtype == torch.int64 and row[key].tolist() == expected[key]
            assert row["labels"].dtype == torch.int64 and int(row["labels"]) == label and int(row["index"]) == i
    batch = collate_examples([processed["train"][i] for i in (2, 0, 3)])
    assert batch["input_ids"].shape == (3, length) and batch["attention_mask"].shape == (3, length)
    assert batch["input_ids"].tolist() == [processed["train"][i]["input_ids"].tolist() for i in (2, 0, 3)]
    assert batch["labels"].tolist() == [list(data.splits["train"]["label"])[i] for i in (2, 0, 3)]
    assert batch["index"].tolist() == [2, 0, 3]
    # Through `preprocess`, the dispatch for text data: the same rows.
    again = preprocess(data, tokenizer, max_length=128)
    assert again["test"][:]["input_ids"].tolist() == processed["test"][:]["input_ids"].tolist()


def test_preprocess_text_truncates_to_max_length(tmp_path):
    tokenizer = _tokenizer(tmp_path)
    data = _directory_with_a_long_test_text(tmp_path)
    processed = preprocess_text(data, tokenizer, max_length=5)
    long_text = data.splits["test"]["text"][0]
    expected = tokenizer(long_text, padding="max_length", max_length=5, truncation=True)
    assert len(tokenizer(long_text)["input_ids"]) > 5 and len(expected["input_ids"]) == 5
    assert processed["test"][0]["input_ids"].tolist() == expected["input_ids"]
    assert expected["input_ids"][-1] == tokenizer.sep_token_id  # truncation keeps [SEP]
    assert collate_examples([processed["test"][i] for i in range(2)])["input_ids"].shape == (2, 5)
    assert collate_examples([processed["train"][i] for i in range(4)])["input_ids"].shape == (4, 5)


def test_token_type_ids_only_when_the_tokenizer_makes_them_and_a_pad_token_is_required(tmp_path):
    data = _directory_with_a_long_test_text(tmp_path)
    tokenizer = _tokenizer(tmp_path, model_input_names=["input_ids", "attention_mask"])
    assert "token_type_ids" not in tokenizer("good")
    processed = preprocess_text(data, tokenizer)
    assert processed["train"].column_names == ["input_ids", "attention_mask", "labels", "index"]
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match=r"^the tokenizer \(BertTokenizer\) has no pad token"):
        preprocess_text(data, tokenizer)


def test_collate_examples_stacks_image_rows_as_the_image_loaders_expect():
    data = load_image_classification_data(max_train_samples=8, max_test_samples=6)
    processor = ViTImageProcessorPil(size={"height": 8, "width": 8}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    assert collate_pixel_values is collate_examples  # the image-only name is the same function
    for rows in (preprocess(data, processor)["test"], preprocess(data, processor, cache_limit_gb=0)["test"]):
        examples = [rows[i] for i in (4, 1, 5)]
        batch = collate_examples(examples)
        expected = {  # stacked here by hand, the layout every image data loader reads
            "pixel_values": torch.stack([torch.as_tensor(e["pixel_values"]) for e in examples]),
            "labels": torch.tensor([int(e["labels"]) for e in examples]),
            "index": torch.tensor([int(e["index"]) for e in examples]),
        }
        assert list(batch) == ["pixel_values", "labels", "index"] and batch["pixel_values"].shape == (3, 3, 8, 8)
        for key in expected:
            assert batch[key].dtype == expected[key].dtype
            torch.testing.assert_close(batch[key], expected[key])


def test_collate_examples_stacks_plain_values_and_refuses_mixed_rows():
    batch = collate_examples([{"a": [1, 2], "b": 0.5, "c": np.zeros(3)}, {"a": [3, 4], "b": 1.5, "c": np.ones(3)}])
    assert batch["a"].tolist() == [[1, 2], [3, 4]] and batch["b"].tolist() == [0.5, 1.5]
    assert batch["c"].shape == (2, 3) and batch["c"][1].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match=r"^example 1 of the batch has keys \['a'\], example 0 \['a', 'b'\]"):
        collate_examples([{"a": 1, "b": 2}, {"a": 1}])
    with pytest.raises(ValueError, match="no examples"):
        collate_examples([])


def test_a_sentence_pair_dataset_is_refused_unless_a_column_is_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"premise": f"a {i}", "hypothesis": f"b {i}", "label": ["yes", "no"][i % 2]} for i in range(20)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(ValueError, match=r"sentence-pair task \(it has \['hypothesis'\].*--text_column"):
        load_text_classification_data(str(path))
    data = load_text_classification_data(str(path), text_column="premise")
    assert data.text_column == "premise" and data.label_names == ["no", "yes"]


@pytest.mark.parametrize(
    "name, text, where",
    [
        (
            "bad.jsonl",
            '{"text": "a", "label": 0}\n\n{"text": "b", "label": 1}\n{"text": "c" "label": 0}\n',
            "line 4, column 14",
        ),
        (
            "lines.json",
            '{"text": "a", "label": 0}\n{"text": "b", "label": 1,}\n{"text": "c", "label": 0}\n',
            "line 2, column 26",
        ),
        (
            "document.json",
            '[\n  {"text": "a", "label": 0},\n  {"text": "b", "label": 1}\n  {"text": "c"}\n]\n',
            "line 4, column 3",
        ),
        ("fields.csv", "text,label\na,0\nb,1\nc,0,extra\n", "line 4: 3 fields where the header (line 1) has 2"),
        ("fields.tsv", "text\tlabel\na\t0\nb\t1\t2\n", "line 3: 3 fields where the header (line 1) has 2"),
        ("quote.csv", 'text,label\na,0\n"b, never closed,1\nc,0\n', "line 4: unexpected end of data"),
    ],
)
def test_a_malformed_text_file_names_its_first_bad_line(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"cannot read dataset file '{re.escape(str(path))}' as \.\w+: ") as error:
        load_text_classification_data(str(path))
    assert where in str(error.value)


def test_a_class_with_a_single_example_is_named_when_no_test_split_can_be_made(tmp_path):
    path = tmp_path / "few.csv"
    rows = [("a b", "pos"), ("c d", "neg")] * 5 + [("e f", "rare")]
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows))
    with pytest.raises(ValueError, match=r"1 of its 3 classes have a single example \('rare' \(1\)\): an 80/20 split"):
        load_text_classification_data(str(path))
