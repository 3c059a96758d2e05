"""Representation diagnostics of one or more image classifiers on a dataset's test split.

    hf-lowrank diagnose outputs/sweep/teacher outputs/sweep/rank-004 --output_dir outputs/diagnostics

Writes diagnostics.json (per model and layer: per-image SVD ranks at 95% / 99% energy, the shared dataset-PCA
dimension, spectral bandwidths b_0.5 / b_0.7 / b_0.9, entropy effective ranks) and rank_vs_depth.png,
svd_vs_pca.png, sep.png. Models are local directories or Hub ids of transformers image classifiers.

A user error (a model that does not exist or is not an image classifier, a bad dataset, an unreadable image) prints
one line ``error: ...`` and exits with status 2; HF_LOWRANK_TRACEBACK=1 keeps the traceback.
"""

import argparse
from pathlib import Path

from transformers import AutoImageProcessor, AutoModelForImageClassification

from ..cli_errors import ArgumentParser, UserError, positive_int, user_errors
from ..data import DIGITS, load_image_classification_data, preprocess
from ..diagnostics import RepresentationError, diagnose_model, plot_diagnostics
from ..models import resolve_pretrained_source
from ..results import atomic_write_json


__all__ = ["image_classifier", "main"]


def image_classifier(name_or_path: str, position: int):
    """The source of the image classifier `name_or_path` (the `position`-th model argument, for the messages),
    checked before any weights load: it exists, and AutoModelForImageClassification loads its kind."""
    argument = f"models[{position}]"
    try:
        source = resolve_pretrained_source(name_or_path, argument=argument, model_types=None)
    except ValueError as error:
        raise UserError(str(error)) from error
    if type(source.config) not in AutoModelForImageClassification._model_mapping:
        architectures = ", ".join(source.config.architectures or []) or "model"
        kind = f"{architectures} (model_type {source.config.model_type!r})"
        raise UserError(
            f"{argument} {name_or_path!r} is a {kind}, not an image classifier: give models that "
            "AutoModelForImageClassification loads (vit, deit, beit, swin, convnext, resnet, ... and hf_lowrank's "
            "students)."
        )
    return source


def main(argv: list[str] | None = None, prog: str = "hf-lowrank diagnose") -> None:
    """`hf-lowrank diagnose` (and `scripts/diagnose.py`); `prog`: the program's name in --help and its errors."""
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model directories or Hub ids")
    parser.add_argument("--dataset", default=DIGITS, help="'digits', an image-folder path or a Hub dataset id")
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument(
        "--max_examples", type=positive_int("the number of test images"), default=256, help="test images to use"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split when one is made")
    parser.add_argument("--output_dir", default="outputs/diagnostics")
    args = parser.parse_args(argv)

    with user_errors():
        sources = [image_classifier(model, position) for position, model in enumerate(args.models)]
        try:
            data = load_image_classification_data(
                args.dataset, args.image_column, args.label_column, seed=args.seed, max_test_samples=args.max_examples
            )
        except ValueError as error:  # a path that does not exist, missing columns, too few classes
            raise UserError(str(error)) from error
        output_dir = Path(args.output_dir)
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"--output_dir {args.output_dir}: cannot create it ({error.strerror or error})."
            ) from error
        results = {}
        for model_path, source in zip(args.models, sources):
            model = AutoModelForImageClassification.from_pretrained(source.name_or_path)
            try:
                processor = AutoImageProcessor.from_pretrained(source.name_or_path)
            except (OSError, ValueError) as error:
                raise UserError(f"{model_path!r} has no image processor that loads: {error}") from error
            try:
                test = preprocess(data, processor)["test"]
            except ValueError as error:  # an image that cannot be read, named with its file
                raise UserError(str(error)) from error
            name = Path(model_path).name if source.is_local else model_path
            try:
                results[name] = diagnose_model(model, test, args.max_examples)
            except RepresentationError as error:  # outputs without the hidden states a diagnostic needs
                raise UserError(f"{model_path!r}: {error}") from error
            final = results[name]["layers"][-1]
            print(
                f"{name}: pooled effective rank {results[name]['pooled_entropy_rank']:.2f}, final layer: per-image "
                f"SVD rank p99 {final['svd_rank_p99']['0.95']:.0f} (95%), shared PCA dimension "
                f"{final['shared_dimension']} of {final['dim']}, b_0.9 {final['bandwidth']['0.9']:.2f}"
            )
        atomic_write_json(output_dir / "diagnostics.json", results)
        figures = plot_diagnostics(results, output_dir)
    print(f"wrote {output_dir / 'diagnostics.json'} and {', '.join(figures)}")
