"""Time and peak memory of loading a Kaggle-style CSV (e.g. train.csv, raw or .gz).

Each load runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its
own. The figure reported is the growth of that peak over the process after its imports,
i.e. what loading the file adds to a server.

    python benchmarks/csv_parse.py /path/train.csv /path/train.csv.gz --repeat 3

Run with ``PYTHONPATH=<another checkout>`` to measure another version of the parser. Make
a realistic train.csv with ``python -c "from pathlib import Path; from
tests.kaggle_train import write_kaggle_train; write_kaggle_train(Path('/tmp'))"``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, resource, sys, time
from nn_core.data import load_kaggle_csv
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
ds = load_kaggle_csv(sys.argv[1])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "added_mib": (peak - before) / 1024,
                  "peak_mib": peak / 1024, "rows": len(ds.y_train) + len(ds.y_test)}))
"""


def measure(path: str) -> dict:
    """Load ``path`` once in a fresh interpreter; return its time and memory figures."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for path in args.files:
        runs = [measure(path) for _ in range(args.repeat)]
        seconds = statistics.median(r["seconds"] for r in runs)
        added = statistics.median(r["added_mib"] for r in runs)
        print(
            f"{path}: {runs[0]['rows']:,} rows, median {seconds:.2f} s, "
            f"peak memory +{added:.0f} MiB over the imports (runs: "
            + ", ".join(f"{r['seconds']:.2f} s/+{r['added_mib']:.0f}" for r in runs)
            + ")"
        )


if __name__ == "__main__":
    main()
