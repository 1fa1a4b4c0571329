"""Turn raw worker answers into the reported figures, the stdout table and the JSON document.

Definitions (also in README.md):
- throughput: training examples per second of each steady window (median, min, max over windows);
- ratio to the reference: per round, reference window seconds / contender window seconds, then the median
  over rounds (both ran back to back, so machine drift cancels in each ratio); > 1 means faster;
- first step: compile plus one step, however the contender splits its work into dispatches. Full runs
  measure it in a fresh process per contender (`session.cold_start`: a 2-step first call minus one
  warm step); `--quick` estimates it as the first window minus the steady time of all its steps but one;
- policy: the dtype policy the row trained under (float32, or mixed_bfloat16: bfloat16 compute, float32
  params and loss); the FLOP/s column still compares with the float32 matmul peak;
- FLOP/s: XLA's FLOP count of the reference train step per example (else 3x the inference count) times
  the throughput, against the float32 matmul peak measured in the same run; for the LSTM workloads the
  reference's matmul FLOPs counted by hand (XLA's cost analysis counts a loop body once).
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.contenders import REFERENCE
from benchmarks.workloads import Workload


def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def flops(raw: dict[str, dict]) -> dict:
    """FLOPs per example: XLA's count of the reference's train step and the jaxnet_lite summary's inference count."""
    infos = [r.get("info", {}) for r in raw.values()]
    pick = lambda key: next((i[key] for i in infos if i.get(key)), None)  # noqa: E731
    analytic = pick("analytic_train_flops_per_example")
    if analytic:  # loop models: XLA's cost analysis counts a loop body once, so the reference counts by hand
        return {"inference_per_example": pick("analytic_inference_flops_per_example"), "train_per_example": analytic,
                "train_source": "matmul FLOPs counted by hand (reference), training = 3 x inference"}
    inference = pick("jnl_inference_flops_per_example") or pick("xla_inference_flops_per_example")
    train = pick("xla_train_flops_per_example")
    return {"inference_per_example": inference,
            "train_per_example": train or (3 * inference if inference else None),
            "train_source": "XLA cost analysis of the reference train step" if train else "3 x inference"}


def contender_figures(workload: Workload, r: dict, ref: dict | None, train_flops: float | None,
                      peak_gflops: float | None, cold: dict | None = None) -> dict:
    """The figures of one contender on one workload (see the module docstring)."""
    if "error" in r and not r.get("windows"):
        return {"error": r["error"]}
    examples = workload.n_train * workload.epochs_per_window
    steps = workload.steps_per_epoch * workload.epochs_per_window
    secs = [w["seconds"] for w in r["windows"]]
    out: dict[str, Any] = {"window_seconds": secs, "train_examples_per_s": _spread([examples / s for s in secs])}
    if secs:
        med = statistics.median(secs)
        out["us_per_step"] = med / steps * 1e6
        out["first_window_s"] = r["first_window"]["seconds"]
        # Noise can push the estimate below zero for a contender with nothing to compile (eager PyTorch).
        out["first_step_est_s"] = max(0.0, r["first_window"]["seconds"] - med * (steps - 1) / steps)
        out["first_step_s"] = out["first_step_est_s"]
        out["first_step_source"] = "first window - steady steps (estimate)"
    if cold and "first_step_s" in cold:
        out["first_step_s"] = cold["first_step_s"]
        out["first_step_source"] = "cold process: first call minus one warm step"
        out["cold_start"] = cold
    if ref is not None and ref.get("windows") and secs:
        pairs = [a["seconds"] / b for a, b in zip(ref["windows"], secs)]
        out["ratio_to_ref"] = _spread(pairs)
    eval_secs = [e["seconds"] for e in r.get("eval_windows", [])]
    n_eval = workload.n_test * workload.eval_repeats
    out["eval_examples_per_s"] = _spread([n_eval / s for s in eval_secs])
    if "eval_before" in r:
        out["eval_first_s"] = r["eval_before"]["seconds"]
        out["loss_before"] = r["eval_before"]["loss"]
    if r.get("eval_windows"):
        out["loss_after"] = r["eval_windows"][-1]["loss"]
        out["accuracy_after"] = r["eval_windows"][-1]["accuracy"]
    out["train_losses"] = [w["loss"] for w in ([r["first_window"]] if "first_window" in r else []) + r["windows"]]
    out["trained"] = bool(out.get("loss_before") is not None and out.get("loss_after") is not None
                          and out["loss_after"] < out["loss_before"])
    ready, stats = r.get("ready", {}), r.get("stats", {})
    out.update({"import_s": ready.get("import_s"), "setup_s": ready.get("setup_s"),
                "rss_after_data_mb": ready.get("rss_after_data_mb"),
                "rss_after_setup_mb": ready.get("rss_after_setup_mb"),
                "rss_peak_mb": stats.get("rss_peak_mb"), "device_memory": stats.get("device_memory"),
                "info": r.get("info")})
    if train_flops and out["train_examples_per_s"]:
        gflops = train_flops * out["train_examples_per_s"]["median"] / 1e9
        out["achieved_gflops"] = gflops
        out["fraction_of_matmul_peak"] = gflops / peak_gflops if peak_gflops else None
    if "error" in r:
        out["error"] = r["error"]
    return out


def workload_figures(workload: Workload, raw: dict[str, dict], peak_gflops: float | None, data: dict,
                     cold: dict[str, dict] | None = None) -> dict:
    f = flops(raw)
    cold = cold or {}
    ref = raw.get(REFERENCE)
    ref = ref if ref and ref.get("windows") else None
    return {"workload": workload.to_json(), "policy": workload.policy, "compute_dtype": workload.compute_dtype,
            "data": data, "flops": f, "reference": REFERENCE if ref else None,
            "contenders": {n: contender_figures(workload, r, ref, f["train_per_example"], peak_gflops, cold.get(n))
                           for n, r in raw.items()}}


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def table(doc: dict) -> str:
    """A plain-text table: one row per workload and contender."""
    head = ["workload", "policy", "contender", "train ex/s med [min-max]", "us/step", "x ref", "1st step s",
            "eval ex/s", "RSS MB", "GFLOP/s (%peak)", "loss before->after"]
    rows, notes = [], []
    for wname, w in doc["workloads"].items():
        name, policy = w["workload"]["name"], w.get("policy", "float32")
        for cname, c in w["contenders"].items():
            if "skipped" in c or not c.get("train_examples_per_s"):
                what = "skipped" if "skipped" in c else "FAILED"
                rows.append([name, policy, cname, what] + [""] * 7)
                notes.append(f"{wname}/{cname} {what}: {(c.get('skipped') or c.get('error', '?')).splitlines()[0]}")
                continue
            t = c["train_examples_per_s"]
            ratio = c.get("ratio_to_ref")
            gf = c.get("achieved_gflops")
            frac = c.get("fraction_of_matmul_peak")
            rows.append([
                name, policy, cname, f"{t['median']:,.0f} [{t['min']:,.0f}-{t['max']:,.0f}]",
                _fmt(c.get("us_per_step")),
                _fmt(ratio["median"] if ratio else None, ".2f"), _fmt(c.get("first_step_s"), ".2f"),
                _fmt((c.get("eval_examples_per_s") or {}).get("median")), _fmt(c.get("rss_peak_mb")),
                "-" if gf is None else f"{gf:.1f}" + (f" ({100 * frac:.0f}%)" if frac else ""),
                f"{_fmt(c.get('loss_before'), '.3f')}->{_fmt(c.get('loss_after'), '.3f')}",
            ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows), *notes])
