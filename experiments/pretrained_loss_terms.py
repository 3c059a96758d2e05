"""Why do students of a pretrained teacher stay at chance from the svd start? Each distillation loss term's size and
gradient, per block output and per rank, for each start, on the same training batches.

For a fine-tuned text teacher (a sweep's OUTPUT/teacher) and a text dataset: every start in --inits at every rank in
--ranks, on --batches batches of --batch_size training examples (the sweep's seeded split, its tokenizer and padded
length): per block output (attention and MLP output of each block, as the geometric loss pairs them) the MSE and the
(1 - cosine) terms, the norm of each term's gradient over the student's trainable parameters, the share of the
squared error in the teacher's 4 largest channels, and the share of padding tokens; the logit term likewise; and the
student's agreement with the teacher's predictions on those batches. --feature_tokens all counts padding positions
in the block terms (as the loss did before it masked them), attended leaves them out. Writes loss_terms.json and
loss_terms.md.

    python experiments/pretrained_loss_terms.py TEACHER_DIR DATASET --output_dir loss_terms [--ranks 4 16 64]
"""

import argparse
import json
from pathlib import Path

import torch
from torch.nn import functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

from hf_lowrank import LowRankForSequenceClassification
from hf_lowrank.data import collate_examples, load_text_classification_data, model_inputs, preprocess_text
from hf_lowrank.distillation import BlockOutputRecorder
from hf_lowrank.factorization import collect_input_statistics
from hf_lowrank.models import decompose_linear


def encoder_linears(model) -> list[str]:
    return [
        name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and ".encoder." in name
    ]


def term_gradient_norm(term: torch.Tensor, parameters: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def measure(student, teacher, batches, tokens: str = "all") -> dict:
    """Per block output and for the logits: mean MSE, mean (1 - cos), their gradient norms (averaged over the
    batches), the top-4-channel share of the squared error, the padding share; the student's agreement with the
    teacher's predictions. `tokens`: the block terms over every token ("all") or the attended ones ("attended")."""
    student_recorder, teacher_recorder = BlockOutputRecorder(student), BlockOutputRecorder(teacher)
    parameters = [p for p in student.parameters() if p.requires_grad]
    rows, correct, total = None, 0, 0
    for batch in batches:
        inputs = model_inputs(batch)
        with torch.no_grad():
            teacher_recorder.clear()
            teacher_logits = teacher(**inputs).logits
            teacher_blocks = teacher_recorder.pop()
        student_recorder.clear()
        logits = student(**inputs).logits
        student_blocks = student_recorder.pop()
        correct += int((logits.argmax(-1) == teacher_logits.argmax(-1)).sum())
        total += len(logits)
        pad_share = float(1 - batch["attention_mask"].float().mean())
        pairs = [*zip(student_blocks, teacher_blocks), (logits, teacher_logits)]
        batch_rows = []
        attended = batch["attention_mask"].float()  # (batch, tokens)
        for position, (s, t) in enumerate(pairs):
            is_block = position < len(pairs) - 1
            counted = attended if is_block and tokens == "attended" else torch.ones(s.shape[:-1])  # (...,)
            weights = counted.unsqueeze(-1)  # (..., 1)
            mse = ((s - t).pow(2) * weights).sum() / (counted.sum() * s.shape[-1])
            cosine = ((1 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)) * counted).sum() / counted.sum()
            squared = ((s - t).detach().pow(2) * weights).reshape(-1, s.shape[-1]).sum(0)  # (channels,)
            energy = (t.detach().pow(2) * weights).reshape(-1, t.shape[-1]).sum(0) / counted.sum()  # (channels,)
            top = torch.topk(energy, min(4, t.shape[-1])).indices
            batch_rows.append(
                {
                    "output": "logits"
                    if position == len(pairs) - 1
                    else f"block {position // 2} {'attention' if position % 2 == 0 else 'mlp'}",
                    "mse": float(mse),
                    "cosine": float(cosine),
                    "mse_grad": term_gradient_norm(mse, parameters),
                    "cosine_grad": term_gradient_norm(cosine, parameters),
                    "top4_error_share": float(squared[top].sum() / squared.sum().clamp_min(1e-30)),
                    "teacher_rms": float(energy.mean().sqrt()),
                    "teacher_max_channel_rms": float(energy.max().sqrt()),
                    "pad_share": pad_share,
                }
            )
        rows = (
            batch_rows
            if rows is None
            else [{k: (v + w[k] if k != "output" else v) for k, v in r.items()} for r, w in zip(rows, batch_rows)]
        )
    student_recorder.remove()
    teacher_recorder.remove()
    rows = [{k: (v / len(batches) if k != "output" else v) for k, v in r.items()} for r in rows]
    return {"agreement_with_teacher": correct / total, "terms": rows}


@torch.no_grad()
def output_errors(teacher, statistics: dict, ranks: list[int], inits: list[str]) -> dict:
    """Per layer kind (the name after the block index, e.g. ``attention.self.query``), averaged over the blocks: the
    relative output error of each start's rank-r weight on the calibration inputs,
    ``tr(dW C dW^T) / tr(W C W^T)`` with C their second moment, and the input's largest channel second moment over
    its median one (the very large channels of a pretrained transformer)."""
    modules = dict(teacher.named_modules())
    table: dict[str, dict] = {}
    for name, stats in statistics.items():
        kind = name.split(".layer.", 1)[1].split(".", 1)[1]
        weight = modules[name].weight.detach().to(torch.float64)  # (out, in)
        second = stats.gram / stats.num_tokens  # (in, in)
        reference = torch.trace(weight @ second @ weight.T)
        entry = table.setdefault(kind, {"layers": 0, "input_max_over_median": 0.0, "errors": {}})
        diagonal = torch.diagonal(second)
        entry["layers"] += 1
        entry["input_max_over_median"] += float(diagonal.max() / diagonal.median())
        for init in inits:
            decomposition = decompose_linear(weight, init, None if init == "svd" else stats)
            for rank in ranks:
                up, down = decomposition.factors(min(rank, decomposition.max_rank), dtype=torch.float64)
                delta = weight - up @ down  # (out, in)
                error = float(torch.trace(delta @ second @ delta.T) / reference)
                key = f"{init} rank {rank}"
                entry["errors"][key] = entry["errors"].get(key, 0.0) + error
    for entry in table.values():
        entry["input_max_over_median"] /= entry["layers"]
        entry["errors"] = {key: value / entry["layers"] for key, value in entry["errors"].items()}
    return table


def summary_line(name: str, measured: dict) -> str:
    """One console line: agreement with the teacher, the block terms summed, the logit terms (gradient norms)."""
    blocks, logits = measured["terms"][:-1], measured["terms"][-1]

    def total(key):
        return sum(row[key] for row in blocks)

    return (
        f"{name:>20}: agreement {measured['agreement_with_teacher']:.2f}; blocks: mse {total('mse'):.3g} "
        f"(grad {total('mse_grad'):.3g}), 1-cos {total('cosine'):.3g} (grad {total('cosine_grad'):.3g}); logits: "
        f"mse {logits['mse']:.3g} (grad {logits['mse_grad']:.3g}), 1-cos {logits['cosine']:.3g} "
        f"(grad {logits['cosine_grad']:.3g})"
    )


def markdown(results: dict) -> str:
    """Per start and rank, one table of every output's terms."""
    lines = []
    for name, measured in results.items():
        lines += [
            f"### {name} (agreement with the teacher {measured['agreement_with_teacher']:.2f})",
            "",
            "| output | MSE | grad | 1 - cos | grad | error share in teacher's 4 largest channels | teacher RMS | "
            "largest channel RMS |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in measured["terms"]:
            lines.append(
                f"| {row['output']} | {row['mse']:.3f} | {row['mse_grad']:.3f} | {row['cosine']:.3f} | "
                f"{row['cosine_grad']:.3f} | {row['top4_error_share']:.2f} | {row['teacher_rms']:.3f} | "
                f"{row['teacher_max_channel_rms']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teacher")
    parser.add_argument("dataset")
    parser.add_argument("--output_dir", default="loss_terms")
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--inits", nargs="+", default=["svd", "whitened", "activation"])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=48)
    parser.add_argument("--calibration_batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--feature_tokens", choices=["all", "attended"], default="all", help="tokens the block terms count"
    )
    args = parser.parse_args(argv)
    set_seed(args.seed)
    torch.set_grad_enabled(True)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval().requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    data = load_text_classification_data(args.dataset, seed=args.seed)
    train = preprocess_text(data, tokenizer, max_length=args.max_seq_length)["train"]
    rows = [train[i] for i in range(args.batch_size * (args.batches + args.calibration_batches))]
    chunks = [collate_examples(rows[i : i + args.batch_size]) for i in range(0, len(rows), args.batch_size)]
    batches, calibration_batches = chunks[: args.batches], chunks[args.batches :]
    statistics = collect_input_statistics(
        teacher, [model_inputs(b) for b in calibration_batches], encoder_linears(teacher)
    )
    errors = output_errors(teacher, statistics, args.ranks, args.inits)
    for kind, entry in errors.items():
        print(
            f"{kind:>24}: input max/median second moment {entry['input_max_over_median']:8.1f}; relative output "
            "error " + ", ".join(f"{key} {value:.3f}" for key, value in entry["errors"].items())
        )
    results = {}
    for init in args.inits:
        for rank in args.ranks:
            student = LowRankForSequenceClassification.from_teacher(
                teacher, rank=rank, init=init, calibration=None if init == "svd" else statistics
            ).train()
            student.requires_grad_(True)
            for module in student.modules():  # dropout off: the terms of the function, not of one dropout draw
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
            results[f"{init} rank {rank}"] = measure(student, teacher, batches, args.feature_tokens)
            print(summary_line(f"{init} rank {rank}", results[f"{init} rank {rank}"]))
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "loss_terms.json").write_text(json.dumps({"output_errors": errors, "terms": results}, indent=1))
    (output_dir / "loss_terms.md").write_text(markdown(results))
    print(f"wrote {output_dir / 'loss_terms.json'}, {output_dir / 'loss_terms.md'}")


if __name__ == "__main__":
    main()
