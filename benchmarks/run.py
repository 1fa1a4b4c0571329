"""Benchmark command line: `python -m benchmarks [options]` (also `python benchmarks/run.py`).

    python -m benchmarks --quick                                  # a minute-scale first look
    python -m benchmarks --workloads cnn,mlp --out results.json   # cnn and mlp, every contender, JSON out
    python -m benchmarks --contenders jnl_fit,ref_jit --windows 5
    python -m benchmarks --workloads char_gpt                     # the GPT race (benchmarks/char_gpt.py)
    python -m benchmarks --policy float32,mixed_bfloat16          # every workload under both dtype policies
    python -m benchmarks --workloads cnn,cnn@mixed_bfloat16       # the same for the CNN alone

The parent process never touches the accelerator: it prepares the data, starts one worker process per
contender (`benchmarks/worker.py`), alternates their measurement windows and writes the table and JSON.
The same command runs on CPU or GPU: each worker uses JAX's default device, reported in the output.
Under `--policy mixed_bfloat16` every contender computes in bfloat16 with float32 params, optimizer state
and loss (jaxnet_lite and Keras set the global policy in their worker, the hand-written reference casts by
hand); contenders without such a model are skipped, saying so. Rows are keyed `cnn@mixed_bfloat16`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import contenders, report, workloads  # noqa: E402
from benchmarks.session import REPO_ROOT, cold_start, measure, worker_env  # noqa: E402


def _probe(peak_only: bool = False, quick: bool = False) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.probe"] + (["--peak-only"] if peak_only else []) + \
        (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(), cwd=REPO_ROOT, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"device probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="cnn,mlp,wide",
                   help=f"comma-separated, from: {', '.join(workloads.FULL)}, each under every --policy, or as "
                        "cnn@mixed_bfloat16 under that policy only; or char_gpt alone (the GPT race)")
    p.add_argument("--contenders", default=",".join(contenders.ALL),
                   help=f"comma-separated, from: {', '.join(contenders.ALL)} (reference: {contenders.REFERENCE})")
    p.add_argument("--policy", default="float32",
                   help=f"comma-separated dtype policies, from: {', '.join(workloads.POLICIES)} (Keras' names); "
                        "each workload runs under each (the sequence workloads under float32 only)")
    p.add_argument("--quick", action="store_true", help="a few steps per window (smoke test, first look)")
    p.add_argument("--windows", type=int, default=None, help="steady-state windows per contender (after warm-up)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per window (cnn/wide/lstm*: the first steps*batch examples; mlp: epochs)")
    p.add_argument("--eval-windows", type=int, default=None, help="evaluation windows (default 3; quick 1)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON document here")
    p.add_argument("--include-slow", action="store_true",
                   help="also run contenders left out by default on this platform (ref_scan on the CPU CNN)")
    p.add_argument("--no-cold-start", action="store_true",
                   help="skip the fresh-process first-step measurement (shorter runs; compile is then estimated)")
    p.add_argument("--quiet", action="store_true", help="no per-window progress lines")
    return p.parse_args(argv)


def _asks_for(argv: list[str], workload: str) -> bool:
    """True when `--workloads` names `workload`; it must then be the only one."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--workloads=") else (
            argv[i + 1] if arg == "--workloads" and i + 1 < len(argv) else None)
        if value is not None and workload in value.split(","):
            if value != workload:
                raise SystemExit(f"--workloads {value}: {workload} runs alone (its own race), not with others")
            return True
    return False


def _without_workloads(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workloads":
            skip = True
        elif not arg.startswith("--workloads="):
            out.append(arg)
    return out


def _choose(names: list[str], workload: str, platform: str, include_slow: bool,
            policy: str = "float32") -> tuple[list[str], dict]:
    """Contenders to run on `workload` under `policy`, and the skipped ones with their reason."""
    run, skipped = [], {}
    for n in names:
        c = contenders.ALL[n]
        if workload in c.no_model:
            skipped[n] = f"no {workload} model written for this contender"
        elif policy not in c.policies:
            skipped[n] = f"no {policy} model written for this contender (it runs under {', '.join(c.policies)})"
        elif c.missing():
            skipped[n] = f"not installed ({', '.join(c.missing())}; see benchmarks/README.md for how to install it)"
        elif platform == "cpu" and workload in c.cpu_skip and not include_slow:
            skipped[n] = f"left out on CPU for {workload} (very slow there; --include-slow runs it)"
        else:
            run.append(n)
    return run, skipped


def _plan(names: list[str], policies: list[str],
          args: argparse.Namespace) -> tuple[list[workloads.Workload], list[str]]:
    """Each workload under each policy, in that order (a name such as `cnn@mixed_bfloat16` under its own
    policy only); and the labels left out (a sequence workload under a mixed policy: no contender has such
    a model)."""
    every = [workloads.get(n.partition("@")[0], args.quick, args.windows, args.steps, p)
             for n in names for p in ([n.partition("@")[2]] if "@" in n else policies)]
    every = list({w.label: w for w in every}.values())  # each label once, where it first appears
    left_out = [w.label for w in every if w.sequence and w.policy != "float32"]
    return [w for w in every if w.label not in left_out], left_out


def _fill(doc: dict, measured: list[tuple]) -> None:
    """`doc`'s workloads from the raw measurements, against the larger of the matmul peaks measured so far."""
    peaks = (doc["matmul_peak"], doc.get("matmul_peak_end"))
    doc["matmul_peak_gflops"] = max(p["gflops_median"] for p in peaks if p)
    for w, data, skipped, raw, cold in measured:
        figures = report.workload_figures(w, raw, doc["matmul_peak_gflops"], data, cold)
        figures["contenders"].update({n: {"skipped": why} for n, why in skipped.items()})
        doc["workloads"][w.label] = figures


def _write(path: Path, doc: dict) -> None:
    """Write the JSON document atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _asks_for(argv, "char_gpt"):  # the GPT race has its own harness (nanoGPT's loop, validation estimate)
        from benchmarks import char_gpt

        return char_gpt.main(_without_workloads(argv))
    args = parse_args(argv)
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in contenders.ALL]
    if unknown:
        raise SystemExit(f"unknown contenders {unknown}; choose from {', '.join(contenders.ALL)}")
    policies = [p.strip() for p in args.policy.split(",") if p.strip()]
    chosen, unwritten = _plan([w.strip() for w in args.workloads.split(",") if w.strip()], policies, args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))  # noqa: E731
    if unwritten:
        say(f"left out: {', '.join(unwritten)} (the sequence workloads have float32 models only)")
    started = time.time()
    probe = _probe(quick=args.quick)
    dev = probe["device"]
    say(f"device: {dev['platform']} ({dev['device_kind']}), {probe['settings']['cpu_count']} CPUs, "
        f"float32 matmul peak {probe['matmul_peak']['gflops_median']:.1f} GFLOP/s")
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", *(argv if argv is not None
                                                                              else sys.argv[1:])]),
        "quick": args.quick, "policies": list(dict.fromkeys(w.policy for w in chosen)), "left_out": unwritten, **probe, "workloads": {},
    }
    eval_windows = args.eval_windows or (1 if args.quick else 3)
    measured = []
    with tempfile.TemporaryDirectory(prefix="jnl-bench-") as tmp:
        for w in chosen:
            data = workloads.prepare(w, Path(tmp))
            run, skipped = _choose(names, w.name, dev["platform"], args.include_slow, w.policy)
            say(f"{w.label}: policy {w.policy}; data {data['source']}; {w.n_train} examples x "
                f"{w.epochs_per_window} epoch(s) per window, "
                f"batch {w.batch_size}, {w.windows} windows; contenders {', '.join(run)}")
            raw = measure(w, run, Path(tmp), eval_windows=eval_windows, progress=say)
            ok = [n for n in run if "error" not in raw[n]]
            cold = {} if args.quick or args.no_cold_start else cold_start(w, ok, Path(tmp), progress=say)
            measured.append((w, data, skipped, raw, cold))
            if args.out:  # the rows so far, so a run cut short by a time limit keeps what it measured
                _fill(doc, measured)
                _write(args.out, {**doc, "complete": False})
    # The peak is the machine's capability: on a busy machine the larger of two measurements is nearer it.
    # (--quick measures it once, with a smaller matmul, to stay short.)
    doc["matmul_peak_end"] = None if args.quick else _probe(peak_only=True)["matmul_peak"]
    _fill(doc, measured)
    doc["wall_s"] = time.time() - started
    print(report.table(doc))
    peaks = ", ".join(f"{p['gflops_median']:.1f} ({when})" for p, when in
                      ((doc["matmul_peak"], "start"), (doc["matmul_peak_end"], "end")) if p)
    print(f"device {dev['platform']} / {dev['device_kind']}; float32 matmul peak {peaks} GFLOP/s; "
          f"reference = {contenders.REFERENCE}; wall {doc['wall_s']:.0f} s")
    if args.out:
        _write(args.out, {**doc, "complete": True})
        print(f"wrote {args.out}")
    failed = [f"{w}/{c}" for w, d in doc["workloads"].items() for c, f in d["contenders"].items() if "error" in f]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
