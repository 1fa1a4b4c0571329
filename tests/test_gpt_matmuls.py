"""`python -m benchmarks.gpt_matmuls` times every product of the GPT step in each engine it finds."""

import re
import subprocess
import sys
from pathlib import Path

from benchmarks import gpt_matmuls

REPO = Path(__file__).resolve().parents[1]


def test_shapes_count_every_product_of_a_step():
    rows = gpt_matmuls.shapes(batch=2, block=8, n_layer=3, n_head=2, n_embd=16, vocab=11)
    flops = sum(2 * r["b"] * r["m"] * r["k"] * r["n"] * r["per_step"] for r in rows)
    tokens, d, layers = 2 * 8, 16, 3
    linear = 3 * 2 * tokens * (layers * (4 * d * d + 2 * d * 4 * d) + d * 11)  # forward + two gradients each
    attention = 6 * 2 * (2 * 2) * 8 * 8 * (d // 2) * layers  # six batched products per layer
    assert flops == linear + attention


def test_benchmark_prints_each_engine_and_the_ratio(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpt_matmuls", "--repeats", "1", "--loops", "2",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    total = re.search(r"^\| \*\*all products of a step, ms\*\* \| \| \| \*\*([\d.]+)\*\*", done.stdout, re.M)
    assert total and float(total.group(1)) > 0, done.stdout
    assert "xla ÷ numpy:" in done.stdout and out.stat().st_size > 0
