"""`python -m benchmarks.first_init` runs and measures both ways of drawing the initial weights."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_first_init_benchmark_measures_both_draws():
    done = subprocess.run([sys.executable, "-m", "benchmarks.first_init", "--workloads", "mlp", "--repeats", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    row = re.search(r"^\| mlp \| ([\d.]+) \[.*?\] \| ([\d.]+) \[.*?\] \| ([\d.]+) \|$", done.stdout, re.M)
    assert row, done.stdout
    unrolled, threefry, ratio = map(float, row.groups())
    assert unrolled > 0 and threefry > 0 and abs(ratio - unrolled / threefry) < 0.02


def test_first_init_rejects_unknown_workloads():
    done = subprocess.run([sys.executable, "-m", "benchmarks.first_init", "--workloads", "gpt"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown workloads ['gpt']" in done.stderr
