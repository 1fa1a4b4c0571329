"""The README's code stays true: its testing-kit example runs, and its commands match CI."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def code_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_testing_kit_example_runs():
    namespace: dict = {}
    exec(compile(code_block_after("## Testing your own layers"), "<README example>", "exec"), namespace)
    namespace["test_scale"]()  # runs the Hypothesis test over drawn shapes and seeds


def test_testing_kit_example_catches_a_wrong_gradient():
    """The README's kit must be able to fail: a layer with a wrong custom gradient is caught."""
    import jax
    import pytest

    from jaxnet_lite import Layer
    from jaxnet_lite.testing import check_layer_grads

    @jax.custom_vjp
    def bad_square(x):
        return x * x

    bad_square.defvjp(lambda x: (x * x, x), lambda x, g: (g * x,))  # should be 2 * x * g

    class Bad(Layer):
        def call(self, params, state, x, *, rng=None, training=False):
            return bad_square(x), state

        def compute_output_shape(self, input_shape):
            return input_shape

    with pytest.raises(AssertionError):
        check_layer_grads(Bad(), (3,))


def test_readme_opens_with_the_two_commands_ci_runs():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert first_block[0].startswith("git clone ") and first_block[0].endswith("&& cd jaxnet_lite")
    assert first_block[1].startswith("python3 -m venv .venv && . .venv/bin/activate")
    assert first_block[2].startswith('pip install ".[plot]" && jaxnet-lite demo')
    assert first_block[3].startswith('pip install ".[test,data,plot]" && python -m pytest -q')
    readme_tests = first_block[3].split("&&", 1)[1].split("#", 1)[0].strip()
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert 'pip install --quiet ".[test,data,plot]"' in ci and readme_tests in ci.splitlines()
