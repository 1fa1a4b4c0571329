"""The package's layers: imports run one way (docs/architecture.md), with no cycles, and
`import jaxnet_lite` stays free of test-only modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "jaxnet_lite"

# Which group each module belongs to: the longest matching prefix wins.
GROUPS = {
    "jaxnet_lite.core": "protocol",
    "jaxnet_lite._version": "base",
    "jaxnet_lite.host_allocator": "base",
    "jaxnet_lite.files": "base",
    "jaxnet_lite.activations": "maths",
    "jaxnet_lite.initializers": "maths",
    "jaxnet_lite.losses": "maths",
    "jaxnet_lite.metrics": "maths",
    "jaxnet_lite.optimizers": "maths",
    "jaxnet_lite.regularizers": "maths",
    "jaxnet_lite.constraints": "maths",
    "jaxnet_lite.loss_scaling": "maths",
    "jaxnet_lite.mixed_precision": "maths",
    "jaxnet_lite.data": "data",
    "jaxnet_lite.datasets": "data",
    "jaxnet_lite.checkpoint": "data",
    "jaxnet_lite.checkpoint_orbax": "data",
    "jaxnet_lite.utils": "data",
    "jaxnet_lite.layers": "layers",
    "jaxnet_lite.graph": "graph",
    "jaxnet_lite.testing": "testing",
    "jaxnet_lite.training": "training",
    "jaxnet_lite.callbacks": "keras",
    "jaxnet_lite.models": "keras",
    "jaxnet_lite.saving": "keras",
    "jaxnet_lite.distributed": "keras",
    "jaxnet_lite.launch": "apps",
    "jaxnet_lite.distribution": "keras",
    "jaxnet_lite.apps": "apps",
    "jaxnet_lite.__main__": "apps",
    "jaxnet_lite": "root",
}

# What each group may import (besides itself). Arrows point down only.
ALLOWED = {
    "base": set(),
    "protocol": set(),
    "maths": {"protocol"},
    "data": {"protocol", "maths", "base"},
    "layers": {"protocol", "maths"},
    "graph": {"protocol"},
    "testing": {"protocol", "maths"},
    "training": {"protocol", "maths", "data", "base"},
    "keras": {"protocol", "maths", "data", "base", "layers", "graph", "training"},
    "root": {"protocol", "maths", "data", "base", "layers", "graph", "training", "keras", "testing"},
    "apps": {"public"},  # only the public API: the package root and its public modules
}
PUBLIC = {"jaxnet_lite", "jaxnet_lite.layers", "jaxnet_lite.callbacks", "jaxnet_lite.datasets", "jaxnet_lite.utils",
          "jaxnet_lite.losses", "jaxnet_lite.metrics", "jaxnet_lite.optimizers", "jaxnet_lite.activations",
          "jaxnet_lite.initializers", "jaxnet_lite.checkpoint", "jaxnet_lite.data", "jaxnet_lite.testing",
          "jaxnet_lite.regularizers", "jaxnet_lite.constraints", "jaxnet_lite.saving", "jaxnet_lite.models",
          "jaxnet_lite.distributed", "jaxnet_lite.launch",
          "jaxnet_lite.distribution",
          "jaxnet_lite.mixed_precision",
          # the data sets, as `keras.datasets.mnist.load_data()`
          *(f"jaxnet_lite.datasets.{name}" for name in ("digits", "fashion_mnist", "idx", "imdb", "iris", "mnist",
                                                          "tfds", "tinyshakespeare"))}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}


def group_of(module: str) -> str:
    best = max((prefix for prefix in GROUPS if module == prefix or module.startswith(prefix + ".")), key=len)
    return GROUPS[best]


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """`(imported module, line)` for every import of a package module, at any depth (lazy ones included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("jaxnet_lite")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("jaxnet_lite"):
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in modules else base, node.lineno))
    return found


def import_graph() -> dict[str, list[tuple[str, int]]]:
    modules = all_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def forbidden_arrows(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    bad = []
    for module, imports in graph.items():
        mine = group_of(module)
        for target, line in imports:
            theirs = group_of(target)
            if theirs == mine and mine != "apps":
                continue
            allowed = ALLOWED[mine]
            ok = (target in PUBLIC or theirs == "apps") if "public" in allowed else theirs in allowed
            if not ok:
                bad.append(f"{module} ({mine}) imports {target} ({theirs}) at line {line}")
    return bad


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Import cycles between modules, each as the list of modules around it."""
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "active"
        stack.append(m)
        for target, _ in graph.get(m, []):
            if target == m:
                continue
            if state.get(target) == "active":
                found.append(stack[stack.index(target):] + [target])
            elif target in graph and target not in state:
                visit(target)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_every_module_has_a_group():
    for module in all_modules():
        assert group_of(module) in ALLOWED, module


def test_imports_run_one_way():
    bad = forbidden_arrows(import_graph())
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_checks_can_fail():
    """A made-up graph with a cycle and an upward arrow is caught, with the offending import named."""
    graph = {
        "jaxnet_lite.core.layer": [("jaxnet_lite.graph.symbolic", 7)],
        "jaxnet_lite.graph.symbolic": [("jaxnet_lite.core.layer", 3)],
        "jaxnet_lite.training.step": [("jaxnet_lite.models.model", 12)],
        "jaxnet_lite.apps.runs": [("jaxnet_lite.training.engine", 5)],
    }
    bad = forbidden_arrows(graph)
    assert "jaxnet_lite.core.layer (protocol) imports jaxnet_lite.graph.symbolic (graph) at line 7" in bad
    assert "jaxnet_lite.training.step (training) imports jaxnet_lite.models.model (keras) at line 12" in bad
    assert "jaxnet_lite.apps.runs (apps) imports jaxnet_lite.training.engine (training) at line 5" in bad
    assert any(set(c) == {"jaxnet_lite.core.layer", "jaxnet_lite.graph.symbolic"} for c in cycles(graph))


@pytest.mark.parametrize("module", ["jaxnet_lite.testing", "hypothesis", "jaxnet_lite.apps.cli", "matplotlib"])
def test_import_jaxnet_lite_leaves_test_and_app_modules_out(module):
    code = f"import sys, jaxnet_lite; print({module!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_testing_kit_is_still_reachable_as_an_attribute():
    import jaxnet_lite

    assert callable(jaxnet_lite.testing.check_layer_grads)
