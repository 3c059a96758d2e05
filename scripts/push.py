"""Publish a finished sweep on the Hub: the chosen students with their cards, and the report.

    python scripts/push.py outputs/sweep --hub_model_id my-name/vit-b32-cifar100 [--push_ranks knee region 32]

The token comes from --hub_token, HF_TOKEN or `hf auth login`, and is never printed.
"""

import argparse
import sys

from hf_lowrank.hub import HubPushError, push_sweep


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: give the number of retries, 0 or more")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a sweep's output directory (holding results.json)")
    parser.add_argument(
        "--hub_model_id", required=True, help="repository prefix: students go to PREFIX-rank-XXX, the report to PREFIX"
    )
    parser.add_argument(
        "--push_ranks", nargs="+", default=None, help="students to push: all (default), knee, region, or rank numbers"
    )
    parser.add_argument("--hub_token", default=None, help="a write token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--private", action="store_true", help="create private repositories")
    parser.add_argument("--retries", type=_non_negative, default=4, help="retries of a transient failure (>= 0)")
    args = parser.parse_args()
    try:
        repo_ids = push_sweep(
            args.output_dir,
            args.hub_model_id,
            args.push_ranks,
            token=args.hub_token,
            private=args.private or None,
            retries=args.retries,
        )
    except (HubPushError, ValueError) as error:
        sys.exit(f"push failed: {error}")
    for rank, repo_id in sorted(repo_ids.items()):
        print(f"rank {rank}: {repo_id}")


if __name__ == "__main__":
    main()
