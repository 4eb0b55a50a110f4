"""Time and peak memory of loading a Kaggle-style CSV (e.g. train.csv, raw or .gz).

Each load runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its
own. The figure reported is the growth of that peak over the process after its imports,
i.e. what loading the file adds to a server.

    python benchmarks/csv_parse.py /path/train.csv /path/train.csv.gz --repeat 3

``--code DIR`` measures the parser of another checkout, e.g. one made with
``git archive <commit> nn_core | tar -x -C DIR``. CPU seconds are printed beside the wall
time: on a shared machine they vary less. Make a realistic train.csv with
``python -c "from pathlib import Path; from tests.kaggle_train import write_kaggle_train;
write_kaggle_train(Path('/tmp'))"``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, time
from nn_core.data import load_kaggle_csv
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, start_cpu = time.perf_counter(), cpu()
ds = load_kaggle_csv(sys.argv[1])
seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "cpu": cpu_seconds, "added_mib": (peak - before) / 1024,
                  "peak_mib": peak / 1024, "rows": len(ds.y_train) + len(ds.y_test)}))
"""


def measure(path: str, code: Path) -> dict:
    """Load ``path`` once in a fresh interpreter running the ``nn_core`` under ``code``;
    return its time and memory figures."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path],
        check=True,
        capture_output=True,
        text=True,
        cwd=code,  # python -c puts the working folder first on sys.path
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    for path in args.files:
        runs = [measure(str(Path(path).resolve()), args.code.resolve()) for _ in range(args.repeat)]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        added = statistics.median(r["added_mib"] for r in runs)
        print(
            f"{path}: {runs[0]['rows']:,} rows, median {seconds:.2f} s ({cpu:.2f} s of CPU), "
            f"peak memory +{added:.0f} MiB over the imports (runs: "
            + ", ".join(f"{r['seconds']:.2f} s/+{r['added_mib']:.0f}" for r in runs)
            + ")"
        )


if __name__ == "__main__":
    main()
