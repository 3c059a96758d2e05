"""Factorize a ViT image classifier into a low-rank student, save it, and load it back through the Auto classes.

With no arguments it runs offline on the sweep's small ViT for scikit-learn's 8x8 digits (random weights: this shows
the mechanics, not accuracy; the rank sweep trains real students). With `--teacher` it factorizes any
ViTForImageClassification checkpoint (a local path or a Hub id).

    python scripts/factorize_demo.py
    python scripts/factorize_demo.py --teacher google/vit-base-patch32-224-in21k --rank 32

A user error (a teacher that does not exist or is not a ViT, a bad rank) prints one line ``error: ...`` and exits
with status 2; HF_LOWRANK_TRACEBACK=1 keeps the traceback.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from transformers import (
    AutoModelForImageClassification,
    HfArgumentParser,
    ViTForImageClassification,
    ViTImageProcessorPil,
    pipeline,
    set_seed,
)

import hf_lowrank
from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.cli_errors import OneLineErrors, UserError, user_errors
from hf_lowrank.models import resolve_pretrained_source
from hf_lowrank.sweep import embedded_teacher


@dataclass
class DemoArguments:
    teacher: str | None = field(
        default=None,
        metadata={"help": "ViTForImageClassification path or Hub id; default: a small random ViT for 8x8 digits."},
    )
    rank: int = field(default=8, metadata={"help": "Rank of every factorized encoder linear layer."})
    energy: float | None = field(
        default=None,
        metadata={"help": "Instead of --rank: per layer, the smallest rank keeping this fraction of spectral energy."},
    )
    output_dir: str = field(default="outputs/factorize_demo", metadata={"help": "Where the student is saved."})
    seed: int = field(default=0, metadata={"help": "Seed for the random demo teacher."})


class DemoArgumentParser(OneLineErrors, HfArgumentParser):
    """The demo's flags; argparse's refusals as one `error:` line."""


def main(argv: list[str] | None = None) -> None:
    (args,) = DemoArgumentParser(DemoArguments, prog="factorize_demo.py").parse_args_into_dataclasses(args=argv)
    with user_errors():
        student, teacher, processor = factorize(args)
    demonstrate(args, student, teacher, processor)


def factorize(args: DemoArguments):
    """(student, teacher, processor): the teacher loaded (or built) and factorized; a bad --teacher, --rank or
    --energy is a `UserError` naming it."""
    set_seed(args.seed)
    if args.teacher is None:
        teacher, processor = embedded_teacher([str(digit) for digit in range(10)])
        teacher.eval()
    else:
        try:
            source = resolve_pretrained_source(args.teacher, argument="--teacher", model_types=("vit",))
        except ValueError as error:
            raise UserError(str(error)) from error
        teacher = ViTForImageClassification.from_pretrained(source.name_or_path).eval()
        processor = ViTImageProcessorPil.from_pretrained(source.name_or_path)
    rank = args.energy if args.energy is not None else args.rank
    try:
        student = FactorizedViTForImageClassification.from_teacher(teacher, rank=rank)
    except (ValueError, StrictDataclassError) as error:  # a rank or energy out of range (the layer's, the config's)
        flag = "--energy" if args.energy is not None else "--rank"
        reason = error.__cause__ if isinstance(error, StrictDataclassError) and error.__cause__ else error
        raise UserError(f"{flag} {rank}: {reason}") from error
    return student, teacher, processor


def demonstrate(args: DemoArguments, student, teacher, processor) -> None:
    """Print the factorization, compare logits, save, reload and run the pipeline."""
    report = hf_lowrank.factorization_report(student)
    assert report.total_params_before == hf_lowrank.count_parameters(teacher)
    print(report)

    size = teacher.config.image_size
    pixel_values = torch.randn(4, teacher.config.num_channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (student(pixel_values).logits - teacher(pixel_values).logits).abs().max().item()
    print(f"\nmax |student - teacher| logit on 4 random inputs, before any distillation: {gap:.4g}")
    print(
        f"analytic forward FLOPs per image: teacher {hf_lowrank.vit_forward_flops(teacher):,}, "
        f"student {hf_lowrank.vit_forward_flops(student):,}"
    )

    student.save_pretrained(args.output_dir)
    processor.save_pretrained(args.output_dir)
    reloaded = AutoModelForImageClassification.from_pretrained(args.output_dir)
    with torch.no_grad():
        assert torch.equal(reloaded(pixel_values).logits, student(pixel_values).logits)
    print(f"\nsaved the student (safetensors, config, image processor, remote code) to {args.output_dir}")
    print(f"reloaded with AutoModelForImageClassification: {type(reloaded).__name__}, identical logits")

    if args.teacher is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        image = Image.fromarray((digits.images[0] * 255 / 16).astype(np.uint8)).convert("RGB")
        predictions = pipeline("image-classification", model=args.output_dir)(image)
        print(
            f"pipeline('image-classification') on a real digit (label {digits.target[0]}), random weights: "
            f"{[(p['label'], round(p['score'], 3)) for p in predictions[:3]]}"
        )


if __name__ == "__main__":
    main()
