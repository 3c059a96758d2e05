"""What `--measure_latency` (on by default) costs the embedded default sweep: the whole sweep's wall time against the
seconds its latency measurements took (each model's `latency.measure_seconds` in results.json: building the batches,
the inference layout's copy, warm-up and timed passes).

    python benchmarks/bench_latency_cost.py [--output_dir DIR] [-- extra sweep flags]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", help="keep the sweep here (default: a temporary directory)")
    options, extra = parser.parse_known_args()
    import sweep as sweep_script

    with tempfile.TemporaryDirectory() as scratch:
        output_dir = Path(options.output_dir or scratch)
        start = time.perf_counter()
        sweep_script.main(["--output_dir", str(output_dir), "--overwrite_output_dir", "true", *extra])
        wall = time.perf_counter() - start
        results = json.loads((output_dir / "results.json").read_text())
    records = [results["teacher"], *results["ranks"], *results.get("budget_students", []), *results.get("nested", [])]
    measured = [r["latency"]["measure_seconds"] for r in records if r.get("latency")]
    print(
        f"\nembedded sweep: {wall:.1f} s wall; latency measured for {len(measured)} models in {sum(measured):.2f} s "
        f"({sum(measured) / wall:.1%} of the sweep; {max(measured):.2f} s at most for one model)"
    )


if __name__ == "__main__":
    main()
