import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hf_lowrank.distillation import distillation_loss, geometric_loss, kd_loss, mse_cosine_loss


def _pair(shape=(3, 5, 7), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator)


def test_mse_cosine_is_zero_for_identical_inputs():
    s, _ = _pair()
    assert mse_cosine_loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_mse_cosine_matches_an_independent_numpy_computation():
    s, t = _pair()
    a, b = s.double().numpy(), t.double().numpy()
    mse = np.mean((a - b) ** 2)
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert mse_cosine_loss(s, t).item() == pytest.approx(mse + np.mean(1 - cos), rel=1e-5)


def test_cosine_term_is_scale_invariant_and_mse_term_is_not():
    s, t = _pair()
    cos_part = lambda x: mse_cosine_loss(x, t) - F.mse_loss(x, t)  # noqa: E731
    torch.testing.assert_close(cos_part(3.7 * s), cos_part(s), rtol=1e-5, atol=1e-6)
    assert mse_cosine_loss(3.7 * s, t) != pytest.approx(mse_cosine_loss(s, t).item())
    # Opposite directions: 1 - cos = 2 per token.
    assert (mse_cosine_loss(-s, s) - F.mse_loss(-s, s)).item() == pytest.approx(2.0, rel=1e-5)


def test_geometric_sums_blocks_and_logits():
    blocks = [_pair(seed=i) for i in range(4)]
    logits = _pair((3, 10), seed=9)
    expected = sum(mse_cosine_loss(s, t) for s, t in blocks) + mse_cosine_loss(*logits)
    got = geometric_loss([s for s, _ in blocks], [t for _, t in blocks], *logits)
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="3 block outputs and the teacher 4"):
        geometric_loss([s for s, _ in blocks[:3]], [t for _, t in blocks], *logits)


def test_kd_matches_closed_form():
    s, t = _pair((4, 6))
    temperature = 2.5
    p = torch.softmax(t / temperature, -1).double()
    q = torch.softmax(s / temperature, -1).double()
    closed = (p * (p.log() - q.log())).sum(-1).mean() * temperature**2
    assert kd_loss(s, t, temperature).item() == pytest.approx(closed.item(), rel=1e-5)
    assert kd_loss(t, t, temperature).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_loss_dispatch_and_cross_entropy():
    s, t = _pair((4, 6))
    labels = torch.tensor([0, 5, 2, 1])
    torch.testing.assert_close(distillation_loss("logits", s, t), mse_cosine_loss(s, t))
    torch.testing.assert_close(distillation_loss("kd", s, t, temperature=2.0), kd_loss(s, t, 2.0))
    with_ce = distillation_loss("logits", s, t, labels=labels, ce_weight=0.5)
    torch.testing.assert_close(with_ce, mse_cosine_loss(s, t) + 0.5 * F.cross_entropy(s, labels))
    with pytest.raises(ValueError, match="geometric"):
        distillation_loss("feature", s, t)
    with pytest.raises(ValueError, match="labels"):
        distillation_loss("logits", s, t, ce_weight=1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        mse_cosine_loss(s, t[:, :3])
    assert math.isfinite(distillation_loss("geometric", s, t, [s[None]], [t[None]]).item())


def test_vectors_reproduced_to_round_off_add_no_loss_and_no_gradient():
    s, t = _pair()
    near = t + 1e-6 * torch.randn(t.shape, generator=torch.Generator().manual_seed(3))  # relative residual ~1e-6
    student = torch.cat([near[:, :2], s[:, 2:]], dim=1).requires_grad_()  # tokens 0-1 reproduced, 2-4 not
    loss = mse_cosine_loss(student, t)
    loss.backward()
    assert torch.count_nonzero(student.grad[:, :2]) == 0 and torch.all(student.grad[:, 2:].abs().sum(-1) > 0)
    # The live tokens count exactly as before; the means still divide by every token.
    a, b = student.detach()[:, 2:].double().numpy(), t[:, 2:].double().numpy()
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    expected = np.sum((a - b) ** 2) / t.numel() + np.sum(1 - cos) / (t.shape[0] * t.shape[1])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # rtol=0 is the plain formula: the reproduced tokens get their (round-off) gradient back.
    plain = student.detach().clone().requires_grad_()
    mse_cosine_loss(plain, t, rtol=0).backward()
    assert torch.count_nonzero(plain.grad[:, :2]) > 0


def test_bridged_feature_mse_ignores_tokens_reproduced_to_round_off():
    from hf_lowrank.distillation import bridged_distillation_loss

    logits_s, logits_t = _pair((3, 4), seed=5)
    tokens = _pair((3, 5, 7), seed=6)[1]
    exact = bridged_distillation_loss("logits", logits_s, logits_t, tokens * (1 + 1e-7), tokens)
    assert exact.item() == pytest.approx(mse_cosine_loss(logits_s, logits_t).item(), rel=1e-6)


def _numpy_feature_terms(s, t, mask, normalization):
    """The block term by hand, in float64 loops: over the counted tokens only, MSE scaled as `normalization` says,
    plus the mean (1 - cos)."""
    s, t, mask = (np.asarray(x, dtype=np.float64) for x in (s, t, mask))
    tokens = [(b, k) for b in range(s.shape[0]) for k in range(s.shape[1]) if mask[b, k]]
    dim = s.shape[-1]
    errors = np.array([[(s[b, k, c] - t[b, k, c]) ** 2 for c in range(dim)] for b, k in tokens])  # (n, dim)
    targets = np.array([[t[b, k, c] ** 2 for c in range(dim)] for b, k in tokens])
    if normalization == "none":
        mse = errors.mean()
    elif normalization == "block":
        mse = errors.mean() / targets.mean()
    else:
        per_channel = targets.mean(0)
        mse = np.mean(errors.mean(0) / (per_channel + 1e-6 * per_channel.mean()))
    cosines = [s[b, k] @ t[b, k] / (np.linalg.norm(s[b, k]) * np.linalg.norm(t[b, k])) for b, k in tokens]
    return mse + np.mean([1 - c for c in cosines])


@pytest.mark.parametrize("normalization", ["none", "block", "channel"])
def test_masked_and_normalised_block_terms_match_a_hand_computation(normalization):
    generator = torch.Generator().manual_seed(3)
    s, t = (
        torch.randn(3, 5, 7, generator=generator, dtype=torch.float64),
        torch.randn(3, 5, 7, generator=generator, dtype=torch.float64),
    )
    t[..., 2] *= 40.0  # one very large channel, as pretrained transformers have
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    got = mse_cosine_loss(s, t, token_mask=mask, normalization=normalization)
    assert math.isclose(float(got), _numpy_feature_terms(s, t, mask, normalization), rel_tol=1e-9)


def test_padding_tokens_add_nothing_when_masked_and_the_plain_loss_is_unchanged():
    generator = torch.Generator().manual_seed(4)
    s, t = torch.randn(2, 6, 5, generator=generator), torch.randn(2, 6, 5, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    masked = mse_cosine_loss(s, t, token_mask=mask)
    changed = s.clone()
    changed[mask == 0] += 100.0  # whatever the student does at padding positions
    assert torch.equal(mse_cosine_loss(changed, t, token_mask=mask), masked)
    # Without a mask (or an all-ones one) the loss is the paper's plain mean over every token.
    plain = F.mse_loss(s, t) + (1 - F.cosine_similarity(s, t, dim=-1)).mean()
    torch.testing.assert_close(mse_cosine_loss(s, t), plain, rtol=1e-6, atol=0)
    torch.testing.assert_close(mse_cosine_loss(s, t, token_mask=torch.ones(2, 6)), plain, rtol=1e-6, atol=0)


def test_block_normalisation_makes_the_mse_scale_free_and_channel_normalisation_weighs_channels_alike():
    generator = torch.Generator().manual_seed(5)
    s, t = torch.randn(4, 3, 6, generator=generator), torch.randn(4, 3, 6, generator=generator)
    for scale in (0.01, 100.0):  # both sides rescaled: the block-normalised loss does not move
        torch.testing.assert_close(
            mse_cosine_loss(s * scale, t * scale, normalization="block"), mse_cosine_loss(s, t, normalization="block")
        )
    # An error in a huge channel counts as much as the same relative error in a small one.
    t = torch.ones(2, 3, 2)
    t[..., 0] = 30.0  # a channel 30 times the others (MiniLM's largest is about 19 times its block's RMS)
    big, small = t.clone(), t.clone()
    big[..., 0] *= 1.1
    small[..., 1] *= 1.1
    # rtol=0: a 10% error in the small channel is below round-off relative to the whole vector's norm.
    big_loss = mse_cosine_loss(big, t, rtol=0, normalization="channel")
    small_loss = mse_cosine_loss(small, t, rtol=0, normalization="channel")
    cosine_big = (1 - F.cosine_similarity(big, t, dim=-1)).mean()
    cosine_small = (1 - F.cosine_similarity(small, t, dim=-1)).mean()
    # Alike up to the floor that keeps a dead channel finite (1e-6 of the mean channel: 4.5e-4 here).
    torch.testing.assert_close(big_loss - cosine_big, small_loss - cosine_small, rtol=1e-3, atol=0)
    plain_big, plain_small = mse_cosine_loss(big, t, rtol=0), mse_cosine_loss(small, t, rtol=0)
    assert plain_big - cosine_big > 800 * (plain_small - cosine_small)  # the plain MSE: 900 times apart


def test_geometric_loss_masks_only_the_outputs_of_the_masks_shape():
    generator = torch.Generator().manual_seed(6)
    blocks = [torch.randn(2, 4, 3, generator=generator) for _ in range(4)]
    windows = [torch.randn(8, 2, 3, generator=generator) for _ in range(2)]  # Swin-like: no token axis to mask
    logits = [torch.randn(2, 5, generator=generator) for _ in range(2)]
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    got = geometric_loss([blocks[0], windows[0]], [blocks[1], windows[1]], *logits, token_mask=mask)
    expected = (
        mse_cosine_loss(blocks[0], blocks[1], token_mask=mask)
        + mse_cosine_loss(windows[0], windows[1])
        + mse_cosine_loss(*logits)
    )
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="normalization must be one of"):
        mse_cosine_loss(blocks[0], blocks[1], normalization="layer")


def test_label_smoothing_of_the_ce_term_is_the_smoothed_target_cross_entropy():
    """--label_smoothing_factor on the added cross-entropy: the target puts 1 - eps on the label and eps / C on every
    class (Trainer's LabelSmoother), checked against that target written out."""
    from hf_lowrank.distillation import distillation_loss

    torch.manual_seed(0)
    student, teacher = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    eps = 0.2
    target = torch.full((6, 5), eps / 5) + (1 - eps) * torch.nn.functional.one_hot(labels, 5)
    by_hand = -(target * student.log_softmax(-1)).sum(-1).mean()
    plain = distillation_loss("logits", student, teacher)
    smoothed = distillation_loss("logits", student, teacher, labels=labels, ce_weight=0.5, label_smoothing=eps)
    torch.testing.assert_close(smoothed - plain, 0.5 * by_hand)
