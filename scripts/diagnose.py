"""Representation diagnostics of one or more image classifiers on a dataset's test split.

    python scripts/diagnose.py outputs/sweep/teacher outputs/sweep/rank-004 --output_dir outputs/diagnostics

Writes diagnostics.json (per model and layer: per-image SVD ranks at 95% / 99% energy, the shared dataset-PCA
dimension, spectral bandwidths b_0.5 / b_0.7 / b_0.9, entropy effective ranks) and rank_vs_depth.png,
svd_vs_pca.png, sep.png. Models are local directories or Hub ids of transformers image classifiers.
"""

import argparse
from pathlib import Path

from transformers import AutoImageProcessor, AutoModelForImageClassification

import hf_lowrank  # noqa: F401  (registers FactorizedViT with the Auto classes)
from hf_lowrank.data import DIGITS, load_image_classification_data, preprocess
from hf_lowrank.diagnostics import diagnose_model, plot_diagnostics
from hf_lowrank.results import atomic_write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model directories or Hub ids")
    parser.add_argument("--dataset", default=DIGITS, help="'digits', an image-folder path or a Hub dataset id")
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--max_examples", type=int, default=256, help="test images to use")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split when one is made")
    parser.add_argument("--output_dir", default="outputs/diagnostics")
    args = parser.parse_args()

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = load_image_classification_data(
        args.dataset, args.image_column, args.label_column, seed=args.seed, max_test_samples=args.max_examples
    )
    results = {}
    for model_path in args.models:
        model = AutoModelForImageClassification.from_pretrained(model_path)
        test = preprocess(data, AutoImageProcessor.from_pretrained(model_path))["test"]
        name = Path(model_path).name if Path(model_path).exists() else model_path
        results[name] = diagnose_model(model, test, args.max_examples)
        final = results[name]["layers"][-1]
        print(
            f"{name}: pooled effective rank {results[name]['pooled_entropy_rank']:.2f}, final layer: per-image "
            f"SVD rank p99 {final['svd_rank_p99']['0.95']:.0f} (95%), shared PCA dimension "
            f"{final['shared_dimension']} of {final['dim']}, b_0.9 {final['bandwidth']['0.9']:.2f}"
        )
    atomic_write_json(output_dir / "diagnostics.json", results)
    figures = plot_diagnostics(results, output_dir)
    print(f"wrote {output_dir / 'diagnostics.json'} and {', '.join(figures)}")


if __name__ == "__main__":
    main()
