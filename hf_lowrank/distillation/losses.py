"""Distillation losses: pure functions of student and teacher tensors, with no model or trainer state.

Shapes: logits `(batch, num_labels)`; block outputs `(batch, tokens, hidden)`. Every loss is a mean over the batch
(and tokens), so it does not grow with the batch size.

The feature losses ignore vectors the student already reproduces to round-off (`ROUNDOFF_RTOL`): such a vector
contributes exactly zero loss and gradient. A student that starts as its teacher's exact function (its factors hold
every direction of the teacher's weights) sits at an exact minimum; the gradient there is round-off, and Adam, whose
step does not depend on the gradient's size, would turn it into learning-rate-sized steps along the sharpest
directions of the loss and walk the student away from the teacher.
"""

from collections.abc import Sequence

import torch
from torch.nn import functional as F


__all__ = [
    "DISTILLATION_MODES",
    "FEATURE_NORMALIZATIONS",
    "FEATURE_TOKENS",
    "bridged_distillation_loss",
    "cosine_embedding_loss",
    "distillation_loss",
    "geometric_loss",
    "ROUNDOFF_RTOL",
    "kd_loss",
    "masked_mse",
    "mse_cosine_loss",
]

DISTILLATION_MODES = ("geometric", "logits", "kd")
# How a block output's MSE is scaled: "none" (the paper's plain MSE), "block" (divided by the teacher's mean square
# of that output), "channel" (each channel's squared error divided by the teacher's mean square of that channel).
FEATURE_NORMALIZATIONS = ("none", "block", "channel")
# Which tokens the block-output terms count: "attended" (those the attention mask keeps; every token without a
# mask) or "all" (padding positions too).
FEATURE_TOKENS = ("attended", "all")
# A vector is reproduced to round-off when ||s - t|| <= ROUNDOFF_RTOL * ||t||: sqrt of float32's machine epsilon,
# far above the round-off of a factorized float32 forward (< 1e-5 relative) and far below any real error.
ROUNDOFF_RTOL = float(torch.finfo(torch.float32).eps) ** 0.5


def _unreproduced(student: torch.Tensor, teacher: torch.Tensor, rtol: float) -> torch.Tensor:
    """`(...,)` 1.0 for every vector (along the last axis) the student does not reproduce to `rtol`, else 0.0."""
    with torch.no_grad():
        residual = (student.float() - teacher.float()).norm(dim=-1)
        return (residual > rtol * teacher.float().norm(dim=-1)).to(student.dtype)


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, rtol: float = ROUNDOFF_RTOL) -> torch.Tensor:
    """`MSE(s, t)` over every element, with the vectors the student reproduces to `rtol` counted as zero error
    (`rtol=0`: plain MSE)."""
    live = _unreproduced(student, teacher, rtol).unsqueeze(-1)  # (..., 1)
    return ((student - teacher).pow(2) * live).mean()


def mse_cosine_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    rtol: float = ROUNDOFF_RTOL,
    token_mask: torch.Tensor | None = None,
    normalization: str = "none",
) -> torch.Tensor:
    """`MSE(s, t) + mean(1 - cos(s, t))`, the cosine taken along the last axis (per token or per example).

    The MSE term aligns magnitudes, the cosine term directions; the cosine term alone is invariant to a positive
    rescaling of either argument. Vectors the student reproduces to round-off (`rtol`, see the module docstring)
    add exactly zero; the means still divide by every counted element, so the scale does not change. `rtol=0` gives
    the plain formula. Zero when `student == teacher`.

    Args:
        student, teacher: `(..., dim)`.
        token_mask: `(...)`, 1 for the vectors both means count and 0 for those they leave out (padding); None
            counts every vector.
        normalization: the MSE as it is (``"none"``), divided by the teacher's mean square over the counted vectors
            (``"block"``: a relative error, so that every block output weighs alike whatever its scale), or the
            mean over channels of each channel's squared error divided by the teacher's mean square of that channel
            (``"channel"``: a few very large channels, as pretrained transformers have, no longer outweigh the
            rest). The cosine term is the same in every case.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher shapes differ: {tuple(student.shape)} vs {tuple(teacher.shape)}.")
    if normalization not in FEATURE_NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {FEATURE_NORMALIZATIONS}, got {normalization!r}.")
    live = _unreproduced(student, teacher, rtol)  # (...,)
    counted = torch.ones_like(live) if token_mask is None else token_mask.to(live.dtype).expand_as(live)  # (...,)
    vectors = counted.sum().clamp_min(1.0)
    squared = (student - teacher).pow(2) * (live * counted).unsqueeze(-1)  # (..., dim)
    dim = student.shape[-1]
    if normalization == "none":
        mse = squared.sum() / (vectors * dim)
    else:
        with torch.no_grad():
            wide = torch.promote_types(teacher.dtype, torch.float32)  # bf16 targets summed in float32
            target = teacher.detach().to(wide).pow(2) * counted.unsqueeze(-1)  # (..., dim)
        if normalization == "block":
            scale = (target.sum() / (vectors * dim)).clamp_min(torch.finfo(torch.float32).tiny)
            mse = squared.sum() / (vectors * dim) / scale
        else:
            per_channel = target.reshape(-1, dim).sum(0) / vectors  # (dim,)
            floor = 1e-6 * per_channel.mean() + torch.finfo(torch.float32).tiny  # a dead channel does not explode
            mse = (squared.reshape(-1, dim).sum(0) / vectors / (per_channel + floor)).mean()
    cosine = F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)  # (...,)
    return mse + ((1.0 - cosine) * live * counted).sum() / vectors


def geometric_loss(
    student_blocks: Sequence[torch.Tensor],
    teacher_blocks: Sequence[torch.Tensor],
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    token_mask: torch.Tensor | None = None,
    normalization: str = "none",
) -> torch.Tensor:
    """The paper's "geometric" distillation: `mse_cosine_loss` summed over every block output pair (student block
    l against teacher block l; attention output and MLP output of each block), plus the same on the logits.

    `token_mask` `(batch, tokens)` (a text batch's attention mask) leaves padding positions out of every block
    output of that shape; `normalization` scales each block output's MSE (`mse_cosine_loss`). The logit term is
    always the plain one. With neither (every token, ``"none"``) this is the paper's formula exactly."""
    if len(student_blocks) != len(teacher_blocks):
        raise ValueError(
            f"geometric distillation pairs block l with block l, but the student has {len(student_blocks)} block "
            f"outputs and the teacher {len(teacher_blocks)}."
        )
    blocks = sum(
        mse_cosine_loss(
            s,
            t,
            token_mask=token_mask if token_mask is not None and token_mask.shape == s.shape[:-1] else None,
            normalization=normalization,
        )
        for s, t in zip(student_blocks, teacher_blocks)
    )
    return blocks + mse_cosine_loss(student_logits, teacher_logits)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hinton et al.'s KD: `T^2 * KL(softmax(t / T) || softmax(s / T))`, averaged over the batch."""
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)  # (batch, num_labels)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="batchmean")
    return kl * temperature**2


def distillation_loss(
    mode: str,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_blocks: Sequence[torch.Tensor] = (),
    teacher_blocks: Sequence[torch.Tensor] = (),
    labels: torch.Tensor | None = None,
    ce_weight: float = 0.0,
    temperature: float = 1.0,
    token_mask: torch.Tensor | None = None,
    feature_normalization: str = "none",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The loss of one distillation `mode` (`"geometric"`, `"logits"` or `"kd"`), plus `ce_weight` times the
    cross-entropy of the student's logits on `labels` when `ce_weight > 0` (with `label_smoothing` in [0, 1): the
    target is (1 - label_smoothing) on the label plus label_smoothing / num_labels on every class, as
    `--label_smoothing_factor` means in Trainer). `token_mask` and `feature_normalization` shape the geometric
    mode's block terms (`geometric_loss`)."""
    if mode == "geometric":
        loss = geometric_loss(
            student_blocks, teacher_blocks, student_logits, teacher_logits, token_mask, feature_normalization
        )
    elif mode == "logits":
        loss = mse_cosine_loss(student_logits, teacher_logits)
    elif mode == "kd":
        loss = kd_loss(student_logits, teacher_logits, temperature)
    else:
        raise ValueError(f"distillation mode must be one of {DISTILLATION_MODES}, got {mode!r}.")
    if ce_weight > 0:
        if labels is None:
            raise ValueError("ce_weight > 0 needs labels.")
        loss = loss + ce_weight * F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    return loss


def bridged_distillation_loss(
    mode: str,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_tokens: torch.Tensor,
    teacher_tokens: torch.Tensor,
    labels: torch.Tensor | None = None,
    ce_weight: float = 0.0,
    temperature: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The loss of a Lift / WideLast student: plain MSE between its final tokens brought to the teacher's width
    and the teacher's final tokens, both `(batch, tokens, teacher_dim)` (the encoding-mismatch paper's feature
    distillation), plus the logit term of `mode`. Block outputs of a narrow student cannot be paired with the
    teacher's, so `"geometric"` uses the logit term of `"logits"` (MSE + cosine)."""
    if student_tokens.shape != teacher_tokens.shape:
        raise ValueError(
            f"bridged tokens {tuple(student_tokens.shape)} do not match the teacher's {tuple(teacher_tokens.shape)}."
        )
    logit_mode = "logits" if mode == "geometric" else mode
    logit_term = distillation_loss(
        logit_mode,
        student_logits,
        teacher_logits,
        labels=labels,
        ce_weight=ce_weight,
        temperature=temperature,
        label_smoothing=label_smoothing,
    )
    return logit_term + masked_mse(student_tokens, teacher_tokens)


def cosine_embedding_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> torch.Tensor:
    """`mean(1 - cos(s, t))` over the batch, for `(batch, dim)` embeddings: the dimensional-collapse paper's
    distillation of a teacher's embedding into a student of another family. Scale-invariant; zero when aligned."""
    if student_embedding.shape != teacher_embedding.shape:
        raise ValueError(
            f"embeddings differ in shape: {tuple(student_embedding.shape)} vs {tuple(teacher_embedding.shape)}."
        )
    return (1.0 - F.cosine_similarity(student_embedding, teacher_embedding, dim=-1, eps=1e-8)).mean()
