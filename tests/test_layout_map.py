"""Sharded parameters: `LayoutMap` rules, their errors, optimizer-state mirroring, and (8 simulated CPU devices,
one subprocess) Dense and attention models split over a ("batch", "model") mesh training like one device."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import jaxnet_lite as jnl
from jaxnet_lite import optimizers
from jaxnet_lite.distribution import DataParallel, DeviceMesh, LayoutMap, ModelParallel, set_distribution
from jaxnet_lite.layers import Dense
from jaxnet_lite.training.distribution import get_distribution, mirror_params, path_string


@pytest.fixture
def mesh():
    return DeviceMesh((1, 1), ("batch", "model"), jax.devices()[:1])


# -- rules ------------------------------------------------------------------------------------------
def test_first_search_match_wins_exact_key_first_unmatched_is_none(mesh):
    layout = LayoutMap(mesh)
    layout["dense.*kernel"] = (None, "model")
    layout["kernel"] = ("model", None)
    layout["dense_1/kernel"] = P(None, None)
    assert layout["dense/kernel"] == P(None, "model")            # both patterns search-match: the first wins
    assert layout["conv2d/kernel"] == P("model", None)           # only the second finds "kernel"
    assert layout["dense_1/kernel"] == P(None, None)             # an exact key beats an earlier pattern
    assert layout["dense/bias"] is None                          # no rule: replicated
    assert layout.spec_for("dense/bias", (4,)) == P()
    assert list(layout) == ["dense.*kernel", "kernel", "dense_1/kernel"] and len(layout) == 3
    del layout["kernel"]
    assert layout["conv2d/kernel"] is None


def test_specs_follow_the_params_tree_paths(mesh):
    model = jnl.Sequential([Dense(4, input_shape=(3,)), Dense(2)])
    params = model.init(jax.random.key(0), (3,)).params
    layout = LayoutMap(mesh)
    layout["dense_1/kernel"] = (None, "model")
    specs = layout.specs(params)
    assert specs == {"dense": {"kernel": P(), "bias": P()}, "dense_1": {"kernel": P(None, "model"), "bias": P()}}
    paths = [path_string(kp) for kp, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    assert paths == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]


def test_a_spec_of_the_wrong_rank_names_the_path_shape_spec_and_mesh(mesh):
    layout = LayoutMap(mesh)
    layout["dense"] = (None, "model")
    with pytest.raises(ValueError) as err:
        layout.spec_for("dense/bias", (4,))
    message = str(err.value)
    for part in ("'dense/bias'", "(4,)", "P(None, 'model')", "DeviceMesh(shape=(1, 1)", "2 entries",
                 "1 dimensions"):
        assert part in message, message
    layout["conv"] = P()  # an empty spec replicates a parameter of any rank
    assert layout.spec_for("conv/kernel", (3, 3, 1, 8)) == P()


@pytest.mark.parametrize("value, match", [
    (("data", None), r"names axes \['data'\] that DeviceMesh"),
    (("model", "model"), "uses a mesh axis twice"),
    ("model", "a PartitionSpec or a tuple"),
    ((None, 3), "must be None, a mesh axis name"),
])
def test_bad_layouts_are_refused_when_set(mesh, value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LayoutMap(mesh)["dense.*kernel"] = value


def test_bad_patterns_and_repeated_keys_are_refused(mesh):
    layout = LayoutMap(mesh)
    with pytest.raises(ValueError, match=r"LayoutMap\['dense\(kernel'\]: not a valid regular expression"):
        layout["dense(kernel"] = (None, "model")
    layout["kernel"] = (None, "model")
    with pytest.raises(ValueError, match="already set"):
        layout["kernel"] = ("model", None)
    with pytest.raises(TypeError, match="DeviceMesh"):
        LayoutMap(jax.sharding.Mesh(np.array(jax.devices()[:1]), ("batch",)))


def test_device_mesh_and_distribution_errors(mesh):
    with pytest.raises(ValueError, match=r"shape \(2, 4\) needs 8 devices, got 1"):
        DeviceMesh((2, 4), ("batch", "model"), jax.devices()[:1])
    with pytest.raises(ValueError, match="same length"):
        DeviceMesh((1,), ("batch", "model"))
    with pytest.raises(ValueError, match="batch_dim_name 'data' is not an axis"):
        ModelParallel(layout_map=LayoutMap(mesh), batch_dim_name="data")
    with pytest.raises(TypeError, match="LayoutMap"):
        ModelParallel(layout_map={"kernel": (None, "model")})
    with pytest.raises(TypeError, match="set_distribution"):
        set_distribution("model_parallel")
    model = jnl.Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="not both"):
        jnl.Trainer(model, "mse", distribution=DataParallel(mesh), mesh=mesh.backend_mesh)


def test_set_distribution_and_scope_reach_compile(mesh):
    dist = DataParallel(devices=jax.devices()[:1])
    model = jnl.Sequential([Dense(2, input_shape=(3,))])
    with dist.scope():
        assert get_distribution() is dist
        model.compile(loss="mse", optimizer="sgd")
    assert get_distribution() is None
    assert model.trainer.engine.distribution is dist
    assert jnl.distribution.distribution() is None


def test_a_mesh_given_to_the_trainer_is_data_parallel_over_its_first_axis():
    model = jnl.Sequential([Dense(2, input_shape=(3,))])
    assert jnl.Trainer(model, "mse").engine.distribution is None  # one device, nothing asked: as before
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    trainer = jnl.Trainer(model, "mse", optimizer="sgd", mesh=mesh)
    assert isinstance(trainer.engine.distribution, DataParallel)
    assert trainer.engine.distribution.batch_dim_name == "data" and trainer.engine.mesh.axis_names == ("data",)
    history = trainer.fit(np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32), batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# -- optimizer state mirrors the params --------------------------------------------------------------
PARAMS = {"dense": {"kernel": jnp.ones((6, 4)), "bias": jnp.ones((4,))}}
LABELS = {"dense": {"kernel": "K", "bias": "B"}}


@pytest.mark.parametrize("optimizer", [optax.adam(1e-3), optimizers.get("adam"), optimizers.get("nadam")])
def test_optimizer_slots_take_their_params_layout(optimizer):
    state = optimizer.init(PARAMS)
    mirrored = mirror_params(optimizer, state, PARAMS, LABELS, "R")
    labelled = dict(zip(map(path_string, (kp for kp, _ in jax.tree_util.tree_flatten_with_path(state)[0])),
                        jax.tree.leaves(mirrored)))
    shapes = {path_string(kp): leaf.shape for kp, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}
    for path, label in labelled.items():
        if path.endswith("dense/kernel"):
            assert label == "K" and shapes[path] == (6, 4), path
        elif path.endswith("dense/bias"):
            assert label == "B" and shapes[path] == (4,), path
        else:
            assert label == "R", path  # counts, learning rates, Nadam's u_product
    assert list(labelled.values()).count("K") == 2  # mu and nu (Keras: momentum and velocity)


def test_factored_slots_stay_replicated_and_opaque_inits_fall_back_to_structure():
    factored = optax.adafactor(1e-3, min_dim_size_to_factor=2)
    state = factored.init(PARAMS)
    mirrored = jax.tree.leaves(mirror_params(factored, state, PARAMS, LABELS, "R"))
    for leaf, label in zip(jax.tree.leaves(state), mirrored):
        assert label == "R" or leaf.shape in {(6, 4), (4,)}

    def init(params):  # reads the leaves, so Optax cannot run it on a placeholder
        return {"count": jnp.zeros([]), "trace": jax.tree.map(lambda p: jnp.zeros(p.shape), params),
                "norms": [jnp.zeros(p.shape[:1]) for p in jax.tree.leaves(params)]}

    opaque = optax.GradientTransformation(init, lambda u, s, p=None: (u, s))
    mirrored = mirror_params(opaque, init(PARAMS), PARAMS, LABELS, "R")
    assert mirrored == {"count": "R", "trace": LABELS, "norms": ["R", "R"]}


# -- 8 simulated devices ----------------------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import json, os, tempfile
    import jax, numpy as np, optax
    from jax.sharding import NamedSharding
    from jaxnet_lite import Input, Model, Sequential
    from jaxnet_lite.distribution import DeviceMesh, LayoutMap, ModelParallel
    from jaxnet_lite.layers import Dense, GlobalAveragePooling1D, LayerNormalization, MultiHeadAttention
    from jaxnet_lite.training.distribution import path_string

    mesh = DeviceMesh((2, 4), ("batch", "model"))
    layout_map = LayoutMap(mesh)
    layout_map["(query|key|value)/kernel"] = (None, "model", None)   # (d_model, heads, head_dim): split heads
    layout_map["(query|key|value)/bias"] = ("model", None)
    layout_map["attention_output/kernel"] = ("model", None, None)
    layout_map["dense.*/kernel"] = (None, "model")
    layout_map["dense.*/bias"] = ("model",)

    def attention_and_dense_stack():
        inp = Input((6, 8))
        h = LayerNormalization()(MultiHeadAttention(num_heads=4, key_dim=4)(inp, inp))
        h = Dense(16, activation="relu")(GlobalAveragePooling1D()(h))
        return Model(inp, Dense(4, activation="softmax")(h))

    def leaves(tree):
        return {path_string(kp): leaf for kp, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}

    def layout_report(ts):
        params, report = leaves(ts.params), {"params": {}, "slots": {}}
        for path, leaf in params.items():
            spec = layout_map.spec_for(path, leaf.shape)
            report["params"][path] = {
                "split": len(spec) > 0, "devices": len(leaf.sharding.device_set), "bytes": leaf.nbytes,
                "as_mapped": leaf.sharding.is_equivalent_to(NamedSharding(mesh.backend_mesh, spec), leaf.ndim),
                "shard_bytes": sorted({s.data.nbytes for s in leaf.addressable_shards}),
                "shards": len(leaf.addressable_shards)}
        for path, leaf in leaves(ts.opt_state).items():  # mu/<param path>, nu/<param path>, count
            param = max((p for p in params if path.endswith("/" + p)), key=len, default=None)
            spec = layout_map.spec_for(param, leaf.shape) if param else None
            report["slots"][path] = (leaf.sharding.is_equivalent_to(NamedSharding(mesh.backend_mesh, spec), leaf.ndim)
                                     if spec is not None else leaf.sharding.is_fully_replicated)
        return report

    def values(model):
        return {k: np.asarray(v).tolist() for k, v in leaves(model.trainer.train_state.params).items()}

    # The key bias has a zero gradient in exact arithmetic (softmax ignores a shift shared by all keys), so
    # its gradient is rounding noise that adam's default eps would turn into full-size steps: eps=1e-3.
    adam = optax.adam(1e-2, eps=1e-3)
    rng = np.random.default_rng(0)
    x = rng.random((64, 6, 8), dtype=np.float32); y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 64)]
    result = {"devices": jax.device_count()}
    one_device = LayoutMap(DeviceMesh((1, 1), ("batch", "model"), jax.devices()[:1]))  # the same rules, unsplit
    for pattern in layout_map:
        one_device[pattern] = layout_map[pattern]
    for name, distribution in [("one_device", ModelParallel(layout_map=one_device)),
                               ("sharded", ModelParallel(layout_map=layout_map))]:
        model = attention_and_dense_stack()
        model.compile(loss="categorical_crossentropy", optimizer=adam, metrics=["accuracy"], seed=3,
                      distribution=distribution)
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)  # whole epochs in one dispatch
        result[name] = {"history": history.history, "params": values(model),
                        "predict": model.predict(x[:10], verbose=0).tolist()}
    result["layout"] = layout_report(model.trainer.train_state)
    # A checkpoint of the split state; a streamed dataset (another compiled program) moves the params on;
    # restoring the checkpoint brings the saved values back in their layout.
    path = os.path.join(tempfile.mkdtemp(), "state.ckpt")
    model.trainer.save_checkpoint(path, epoch=3)
    saved = values(model)
    model.fit([(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)], epochs=1, verbose=0)
    result["stream_layout"] = layout_report(model.trainer.train_state)
    result["stream_moved"] = values(model) != saved
    result["restored_epoch"] = model.trainer.restore_checkpoint(path)
    result["restored_equal"] = values(model) == saved
    result["restored_layout"] = layout_report(model.trainer.train_state)
    # A dimension that does not divide over its axis: a clear error before anything runs.
    uneven = LayoutMap(mesh)
    uneven["dense_1/kernel"] = (None, "model")
    try:
        Sequential([Dense(8, input_shape=(4,)), Dense(6)]).compile(
            loss="mse", optimizer="sgd", distribution=ModelParallel(layout_map=uneven))
        result["uneven_error"] = None
    except ValueError as e:
        result["uneven_error"] = str(e)
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def eight_devices() -> dict:
    # A toy model: compiling is most of its time, so XLA's backend optimisations are off (same numbers).
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_same_training(sharded: dict, reference: dict) -> None:
    for key in reference["history"]:
        np.testing.assert_allclose(sharded["history"][key], reference["history"][key], rtol=1e-5, atol=1e-6)
    assert sharded["params"].keys() == reference["params"].keys()
    for path in reference["params"]:
        np.testing.assert_allclose(sharded["params"][path], reference["params"][path], rtol=1e-5, atol=1e-5,
                                   err_msg=path)
    np.testing.assert_allclose(sharded["predict"], reference["predict"], rtol=1e-5, atol=1e-6)


def assert_laid_out(report: dict, split: set) -> None:
    assert {path for path, p in report["params"].items() if p["split"]} == split
    for path, p in report["params"].items():
        assert p["as_mapped"] and p["devices"] == 8 and p["shards"] == 8, (path, p)
        assert p["shard_bytes"] == [p["bytes"] // 4 if p["split"] else p["bytes"]], (path, p)  # 4 on "model"
    assert all(report["slots"].values()), report["slots"]


SPLIT = {f"multi_head_attention/{p}/{n}" for p in ("query", "key", "value") for n in ("kernel", "bias")} | {
    "multi_head_attention/attention_output/kernel",
    *(f"{layer}/{n}" for layer in ("dense", "dense_1") for n in ("kernel", "bias"))}


def test_sharded_model_trains_like_one_device(eight_devices):
    assert eight_devices["devices"] == 8
    assert_same_training(eight_devices["sharded"], eight_devices["one_device"])


def test_each_device_holds_only_its_slice(eight_devices):
    for report in ("layout", "stream_layout"):
        assert_laid_out(eight_devices[report], SPLIT)
    slots = eight_devices["layout"]["slots"]
    assert sum("/mu/" in path or "/nu/" in path for path in slots) == 2 * len(eight_devices["sharded"]["params"])


def test_checkpoint_round_trip_keeps_values_and_layout(eight_devices):
    assert eight_devices["stream_moved"] and eight_devices["restored_equal"] and eight_devices["restored_epoch"] == 3
    assert_laid_out(eight_devices["restored_layout"], SPLIT)


def test_a_dimension_that_does_not_divide_is_a_clear_error(eight_devices):
    message = eight_devices["uneven_error"]
    assert message is not None
    for part in ("'dense_1/kernel'", "(8, 6)", "P(None, 'model')", "DeviceMesh(shape=(2, 4)",
                 "dimension 1 (size 6)", "4 devices"):
        assert part in message, message
