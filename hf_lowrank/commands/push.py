"""Publish a finished sweep on the Hub: the chosen students with their cards, and the report.

    hf-lowrank push outputs/sweep --hub_model_id my-name/vit-b32-cifar100 [--push_ranks knee region 32]

The token comes from --hub_token, HF_TOKEN or `hf auth login`, and is never printed. A user error (no finished
sweep, a bad --push_ranks, a failed upload) prints one line and exits with status 2; HF_LOWRANK_TRACEBACK=1 keeps
the traceback.
"""

import argparse

from ..cli_errors import ArgumentParser, UserError, non_negative_int, user_errors
from ..hub import HubPushError, push_sweep, pushed_pairs


__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str = "hf-lowrank push") -> None:
    """`hf-lowrank push` (and `scripts/push.py`); `prog`: the program's name in --help and its errors."""
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a sweep's output directory (holding results.json)")
    parser.add_argument(
        "--hub_model_id", required=True, help="repository prefix: students go to PREFIX-rank-XXX, the report to PREFIX"
    )
    parser.add_argument(
        "--push_ranks",
        nargs="+",
        default=None,
        help="students to push: all (default: rank and budget students), knee, region, budgets, or rank numbers",
    )
    parser.add_argument("--hub_token", default=None, help="a write token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--private", action="store_true", help="create private repositories")
    parser.add_argument(
        "--retries",
        type=non_negative_int("the number of retries", zero="0: no retry"),
        default=4,
        help="retries of a transient failure (>= 0)",
    )
    args = parser.parse_args(argv)
    with user_errors(prefixes={HubPushError: "push failed"}):
        try:
            repo_ids = push_sweep(
                args.output_dir,
                args.hub_model_id,
                args.push_ranks,
                token=args.hub_token,
                private=args.private or None,
                retries=args.retries,
            )
        except ValueError as error:  # a bad --push_ranks or --hub_model_id, no finished sweep
            raise UserError(str(error)) from error
    for what, repo_id in pushed_pairs(repo_ids):
        print(f"{what}: {repo_id}")
