"""The adaptive rank search (`--ranks auto`): the coarse grid, where each round puts its ranks, when it stops, and a
search on a planted curve whose answer is known."""

import math

import numpy as np
import pytest

from hf_lowrank.analysis import summarize_curve
from hf_lowrank.analysis.rank_search import coarse_grid, preview_at_teacher, propose_ranks, search_ranks


NUM_EXAMPLES = 600
TEACHER = (np.arange(NUM_EXAMPLES) < 540).astype(float)  # the teacher gets 90% right


def planted(rank: int, planted_rank: int = 8) -> np.ndarray:
    """A student of `rank` on a curve planted at `planted_rank`: it keeps the teacher's right answers on the share
    0.5 + 0.5 * rank / planted_rank of the examples (all of them from `planted_rank` up), so its normalised accuracy
    reaches 0.95 at rank 0.9 * planted_rank exactly (linear between the ranks)."""
    share = min(1.0, 0.5 + 0.5 * rank / planted_rank)
    order = np.random.default_rng(0).permutation(NUM_EXAMPLES)  # which examples a student keeps first
    kept = np.zeros(NUM_EXAMPLES)
    kept[order[: round(share * NUM_EXAMPLES)]] = 1
    return TEACHER * kept  # (NUM_EXAMPLES,)


def test_coarse_grid_is_powers_of_four_then_the_largest_rank():
    assert coarse_grid(48) == [1, 4, 16, 48]
    assert coarse_grid(64) == [1, 4, 16, 64]
    assert coarse_grid(1) == [1] and coarse_grid(5) == [1, 4, 5]
    with pytest.raises(ValueError, match="max_rank must be an integer >= 1; got 0"):
        coarse_grid(0)


def test_a_round_puts_a_rank_between_the_measured_ranks_around_each_crossing():
    ranks = [1, 4, 16, 64]
    proposals, _ = propose_ranks(ranks, [planted(r) for r in ranks], TEACHER, max_rank=64, tolerance=0.5)
    by_rank = {p.rank: p for p in proposals}
    # measured normalised accuracies about 0.56, 0.75, 1, 1: both thresholds cross between ranks 4 and 16, and one
    # rank serves both (r_85 asks first)
    assert by_rank[round(math.sqrt(4 * 16))].target == "r_low"
    assert "the measured ranks 4 and 16 around it are 2 octaves apart" in by_rank[8].reason
    assert [p.rank for p in proposals] == [8]  # every quantity lies in that gap: one rank serves all three
    assert all(p.rank not in ranks for p in proposals) and len({p.rank for p in proposals}) == len(proposals)
    assert all(p.round == 1 for p in proposals)


def test_a_threshold_not_reached_asks_for_a_larger_rank_and_one_reached_at_once_for_a_smaller():
    proposals, _ = propose_ranks([1, 2], [planted(1), planted(2)], TEACHER, max_rank=64, tolerance=0.5)
    assert proposals[0].rank == 4 and "not reached by the largest rank measured, 2" in proposals[0].reason
    proposals, _ = propose_ranks([8, 16], [planted(8), planted(16)], TEACHER, max_rank=64, tolerance=0.5)
    assert proposals[0].rank == 4 and "already reached at the smallest rank measured, 8" in proposals[0].reason


def test_adjacent_ranks_or_a_narrow_interval_settle_a_quantity():
    ranks = [7, 8, 9]
    proposals, settled = propose_ranks(ranks, [planted(r) for r in ranks], TEACHER, max_rank=9, tolerance=0.5)
    assert not [p for p in proposals if p.target == "r_high"]
    assert any(line.startswith("r_95") and "settled" in line for line in settled)
    wide, _ = propose_ranks([1, 4, 16], [planted(r) for r in (1, 4, 16)], TEACHER, max_rank=16, tolerance=0.01)
    loose, settled = propose_ranks([1, 4, 16], [planted(r) for r in (1, 4, 16)], TEACHER, max_rank=16, tolerance=9)
    assert wide and not [p for p in loose if p.target in ("r_low", "r_high")]
    assert any("settled (measured ranks within 9 octaves" in line for line in settled)


def test_search_on_a_planted_curve_finds_r95_below_the_planted_rank_with_fewer_students_than_the_dense_grid():
    measured = []

    def measure(ranks):
        measured.extend(ranks)
        return {rank: planted(rank) for rank in ranks}

    chosen = search_ranks(measure, TEACHER, max_rank=64, tolerance=0.5, max_students=6)
    ranks = [p.rank for p in chosen]
    assert ranks == measured and len(set(ranks)) == len(ranks)
    dense = [1, 2, 4, 8, 16, 32, 64]  # the sweep's default grid for rank 64
    summary = summarize_curve(sorted(ranks), [planted(r).mean() for r in sorted(ranks)], TEACHER.mean())
    dense_summary = summarize_curve(dense, [planted(r).mean() for r in dense], TEACHER.mean())
    assert summary.r_high <= 8 and abs(summary.r_high - 7.2) < abs(dense_summary.r_high - 7.2)
    assert len(ranks) < len(dense)
    assert [p.round for p in chosen] == sorted(p.round for p in chosen) and chosen[0].target == "grid"


def test_preview_at_teacher_is_the_tail_of_ranks_whose_previews_all_reach_the_level():
    previews = {1: 0.3, 2: 0.995, 4: 0.98, 8: 0.99, 16: 1.01, 32: 0.999}
    assert preview_at_teacher(previews, 0.99) == {8: 0.99, 16: 1.01, 32: 0.999}  # 2 is above it, but 4 is not
    assert preview_at_teacher(previews, 0.97) == {2: 0.995, 4: 0.98, 8: 0.99, 16: 1.01, 32: 0.999}
    assert preview_at_teacher(previews, 2) == {} and preview_at_teacher({}, 0.99) == {}
    assert preview_at_teacher({4: 0.5, 8: 1.0, 16: 0.98}, 0.99) == {}  # the largest rank is below the level


def test_untrained_ranks_join_the_first_round_outside_the_budget_and_cut_the_coarse_grid():
    measured = []

    def measure(ranks):
        measured.append(list(ranks))
        return {rank: planted(rank) for rank in ranks}

    untrained = {16: "preview at the teacher", 32: "preview at the teacher", 64: "preview at the teacher"}
    chosen = search_ranks(measure, TEACHER, max_rank=64, tolerance=0.5, max_students=3, untrained=untrained)
    assert measured[0] == [1, 4, 16, 32, 64]  # the coarse grid (1, 4, 16, 64) stops below 16
    targets = {p.rank: p.target for p in chosen}
    assert [rank for rank, target in targets.items() if target == "preview"] == [16, 32, 64]
    trained = [p.rank for p in chosen if p.target != "preview"]
    assert len(trained) == 3 and len(chosen) == 6  # the budget counts trained ranks only
    assert [p.rank for p in chosen] == [rank for ranks in measured for rank in ranks]
    # Without them the same budget trains 3 ranks of the plain coarse grid and nothing else.
    plain = search_ranks(lambda ranks: {r: planted(r) for r in ranks}, TEACHER, 64, tolerance=0.5, max_students=3)
    assert [p.rank for p in plain] == [1, 4, 64]


def test_the_search_is_seeded_and_a_resumed_search_chooses_the_same_ranks():
    class Killed(Exception):
        pass

    def run(kill_at_round=None, cache=None):
        calls = []

        def measure(ranks):
            calls.append(ranks)
            if kill_at_round is not None and len(calls) > kill_at_round:
                raise Killed
            return {rank: planted(rank) for rank in ranks}

        return search_ranks(measure, TEACHER, max_rank=64, tolerance=0.5, max_students=8, seed=3), calls

    first, _ = run()
    again, _ = run()
    assert first == again
    with pytest.raises(Killed):
        run(kill_at_round=2)
    resumed, calls = run()  # the rerun measures the finished ranks again (a sweep reads them back) and goes on
    assert resumed == first and calls[0] == [p.rank for p in first if p.round == 0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tolerance": 0}, "tolerance must be a number of octaves > 0; got 0"),
        ({"max_students": 2}, "max_students must be an integer >= 3 (a curve needs three ranks); got 2"),
    ],
)
def test_bad_search_settings_are_named(kwargs, message):
    settings = {"tolerance": 0.5, "max_students": 6, **kwargs}
    with pytest.raises(ValueError, match=re_escape(message)):
        search_ranks(lambda ranks: {r: planted(r) for r in ranks}, TEACHER, max_rank=64, **settings)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)
