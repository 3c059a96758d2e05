"""Distil one low-rank student per rank from a ViT teacher and record accuracy against rank.

    accelerate launch scripts/sweep.py                       # embedded default: digits, a small ViT teacher
    accelerate launch scripts/sweep.py --teacher google/vit-base-patch32-224-in21k --dataset cifar100 \\
        --label_column fine_label --ranks 2 4 8 16 32 64 128 --num_train_epochs 5
    python scripts/sweep.py --config sweep.yaml --seed 1     # YAML arguments, command-line flags win

The same as `hf-lowrank sweep ...` and `accelerate launch -m hf_lowrank sweep ...`. The TrainingArguments flags the
sweep honours are listed by --help; the others are refused by name. Rerunning the same command resumes: finished
ranks are kept, a group interrupted mid-training continues from its latest checkpoint (every --save_steps optimizer
steps).
"""

from hf_lowrank.sweep.cli import EMBEDDED_DEFAULTS, main, parse, yaml_to_argv


__all__ = ["EMBEDDED_DEFAULTS", "main", "parse", "yaml_to_argv"]

if __name__ == "__main__":
    main()
