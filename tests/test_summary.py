"""summary(): Keras' table, checked line by line, plus the FLOPs column."""

import pytest

from jaxnet_lite import Input, Model, Sequential
from jaxnet_lite.layers import Add, BatchNormalization, Dense
from jaxnet_lite.models.summary import readable_size
from jaxnet_lite.apps.runs import digits_cnn
from jaxnet_lite.apps.runs import iris_mlp as mlp
from jaxnet_lite.apps.runs import mnist_cnn as cnn

MLP_TABLE = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 32)             │           160 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 32)             │         1,056 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_2 (Dense)                 │ (None, 32)             │         1,056 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_3 (Dense)                 │ (None, 3)              │            99 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 2,371 (9.26 KB)
 Trainable params: 2,371 (9.26 KB)
 Non-trainable params: 0 (0.00 B)"""

CNN_TABLE = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 11, 11, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 5, 5, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 1600)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dropout (Dropout)               │ (None, 1600)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 10)             │        16,010 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 34,826 (136.04 KB)
 Trainable params: 34,826 (136.04 KB)
 Non-trainable params: 0 (0.00 B)"""


def test_mlp_summary_line_by_line():
    text = mlp().summary(show_flops=False, return_text=True)
    assert text.split("\n") == MLP_TABLE.split("\n")


def test_cnn_summary_line_by_line():
    text = cnn().summary(show_flops=False, return_text=True)
    assert text.split("\n") == CNN_TABLE.split("\n")


def test_functional_summary_has_input_row_and_same_totals():
    inp = Input((4,))
    x = Dense(32, activation="relu")(inp)
    x = Dense(32, activation="relu")(x)
    x = Dense(32, activation="relu")(x)
    out = Dense(3, activation="softmax")(x)
    lines = Model(inputs=[inp], outputs=[out]).summary(show_flops=False, return_text=True).split("\n")
    assert lines[0] == 'Model: "functional"'
    assert lines[4] == "│ input_layer (InputLayer)        │ (None, 4)              │             0 │"
    assert lines[-3:] == MLP_TABLE.split("\n")[-3:]


def test_summary_prints_by_default_and_print_fn_gets_lines(capsys):
    model = mlp()
    assert model.summary(show_flops=False) is None
    assert capsys.readouterr().out.rstrip("\n") == MLP_TABLE
    lines = []
    model.summary(print_fn=lines.append, show_flops=False)
    assert lines == MLP_TABLE.split("\n")


def test_flops_column_exact_for_dense_layers():
    text = mlp().summary(return_text=True)
    header = text.split("\n")[2]
    assert header.split("┃")[4].strip() == "FLOPs"
    rows = [line for line in text.split("\n") if line.startswith("│ dense")]
    flops = [int(row.split("│")[4].strip().replace(",", "")) for row in rows]
    # matmul 2*in*out, + bias add (out), + relu (out) per example.
    assert flops[0] == 2 * 4 * 32 + 32 + 32
    assert flops[1] == flops[2] == 2 * 32 * 32 + 32 + 32
    assert flops[3] >= 2 * 32 * 3 + 3  # plus XLA's count for the softmax
    total = int(text.split("FLOPs per example (inference): ")[1].replace(",", ""))
    assert total == sum(flops)


def test_cnn_conv_flops_match_formula():
    text = cnn().summary(return_text=True)
    row = next(line for line in text.split("\n") if line.startswith("│ conv2d_1 "))
    flops = int(row.split("│")[4].strip().replace(",", ""))
    macs = 11 * 11 * 64 * (3 * 3 * 32)
    assert 2 * macs <= flops <= 2 * macs + 3 * 11 * 11 * 64  # + bias and relu


def test_non_trainable_state_counted():
    model = Sequential([Dense(8, input_shape=(4,)), BatchNormalization()])
    lines = model.summary(show_flops=False, return_text=True).split("\n")
    assert " Total params: 72 (288.00 B)" in lines
    assert " Trainable params: 56 (224.00 B)" in lines
    assert " Non-trainable params: 16 (64.00 B)" in lines


def test_connected_to_column_for_branching_graphs():
    a, b = Input((3,), name="a"), Input((3,), name="b")
    out = Add()([Dense(3)(a), Dense(3)(b)])
    text = Model([a, b], out).summary(show_flops=False, return_text=True)
    assert "Connected to" in text.split("\n")[2]
    assert "dense[0][0]" in text and "dense_1[0][0]" in text


@pytest.mark.parametrize("size,expected", [(0, "0.00 B"), (9484, "9.26 KB"), (139304, "136.04 KB"),
                                           (5 * 1024**2, "5.00 MB")])
def test_readable_size(size, expected):
    assert readable_size(size) == expected


def test_flops_fall_back_to_the_cpu_lowering_when_the_backend_gives_none(monkeypatch):
    """CUDA's plugin returns no cost analysis for uncompiled programs: the count then comes from a CPU lowering."""
    from jax import stages

    from jaxnet_lite.models.summary import flops_per_example

    expected = flops_per_example(mlp(), (4,))
    real = stages.Lowered.cost_analysis
    calls = []

    def empty_first(self):
        calls.append(1)
        return {} if len(calls) == 1 else real(self)

    monkeypatch.setattr(stages.Lowered, "cost_analysis", empty_first)
    assert expected > 2 * 4 * 32
    assert flops_per_example(mlp(), (4,)) == expected
    assert len(calls) == 2


def row_flops(text: str) -> dict[str, str]:
    """The FLOPs cell of each table row, by layer name."""
    rows = [line.split("│") for line in text.split("\n") if line.startswith("│ ") and line.split("│")[1].strip()]
    return {cells[1].split()[0]: cells[4].strip() for cells in rows}


def total_flops(text: str) -> str:
    return text.split("FLOPs per example (inference): ")[1].strip()


@pytest.mark.parametrize("make", [cnn, digits_cnn], ids=["tutorial_cnn", "demo_cnn"])
def test_layers_without_arithmetic_count_zero_and_the_total_is_the_sum(make):
    """Flatten (a reshape) and Dropout (an identity in inference) do no arithmetic: 0, not "?"."""
    text = make().summary(return_text=True)
    flops = row_flops(text)
    assert flops["flatten"] == flops["dropout"] == "0"
    assert all(flops[name] not in ("0", "?") for name in flops if name.startswith(("conv2d", "dense")))
    assert int(total_flops(text).replace(",", "")) == sum(int(f.replace(",", "")) for f in flops.values())


@pytest.mark.parametrize("fn", [lambda x: x, lambda x: x.reshape(-1), lambda x: x.T], ids=["identity", "reshape",
                                                                                         "transpose"])
def test_xla_flops_of_a_program_without_arithmetic_is_zero(fn):
    import jax.numpy as jnp

    from jaxnet_lite.models.summary import xla_flops

    assert xla_flops(fn, jnp.ones((3, 4))) == 0.0


def test_an_unavailable_count_still_shows_a_question_mark(monkeypatch):
    """A backend without cost analysis: every row is "?" (a reshape's 0 is not assumed), and the total too."""
    from jax import stages

    monkeypatch.setattr(stages.Lowered, "cost_analysis", lambda self: None)
    text = cnn().summary(return_text=True)
    assert set(row_flops(text).values()) == {"?"}
    assert total_flops(text) == "?"


def test_one_unavailable_row_makes_the_total_unknown(monkeypatch):
    """The analysis fails only for the program with a reshape (Flatten's): that row and the total are "?"."""
    from jax import stages

    real = stages.Lowered.cost_analysis

    def failing_on_reshape(self):
        if "reshape" in self.as_text():
            raise RuntimeError("no cost analysis")
        return real(self)

    monkeypatch.setattr(stages.Lowered, "cost_analysis", failing_on_reshape)
    text = cnn().summary(return_text=True)
    flops = row_flops(text)
    assert flops["flatten"] == "?"
    assert flops["dropout"] == "0" and flops["dense"] not in ("0", "?")
    assert total_flops(text) == "?"
