"""The optional capacity of the config — deeper encoders, a shared
projection head, encoder dropout, learned temperatures: the defaults are the
original model, the new tensors have stable names, the forward matches a
NumPy reference, dropout acts in training only and reproducibly, and
checkpoints, pickling, exact resume, the CLI and the scikit-learn estimator
carry the options."""

import pickle
from dataclasses import replace

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.checkpoint import FILE_FORMAT
from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors

from conftest import assert_resumes_exactly, cli_train_args, save_without_config_fields

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4}
CAPACITY = ("encoder_hidden", "encoder_output_dim", "shared_head", "encoder_input_dropout",
            "encoder_hidden_dropout", "learnable_temperature")


def deep(**changes):
    """The probe's shape, small."""
    options = dict(
        embed_dim=8, hidden_dim=16, num_heads=2, input_dims=DIMS, seed=3,
        encoder_hidden=(16,), encoder_output_dim=12, shared_head=(12, 8),
        encoder_input_dropout=0.1, encoder_hidden_dropout=0.3, learnable_temperature=True, temperature=0.2,
    )
    options.update(changes)
    return gm.LearnableMultiModal(**options)


def views(n=48, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32) for m, d in DIMS.items()}


def test_defaults_are_the_original_model():
    model = gm.LearnableMultiModal(seed=0)
    assert model.num_parameters() == 70_337
    names = list(model.state_dict())
    assert names[:2] == ["encoder.visual.weight", "encoder.visual.bias"]
    assert not any(n.startswith(("head.", "contrastive.", "fused_contrastive.")) for n in names)
    c = model.config
    assert (c.encoder_hidden, c.encoder_output_dim, c.shared_head) == ((), None, ())
    assert (c.encoder_input_dropout, c.encoder_hidden_dropout, c.learnable_temperature) == (0.0, 0.0, False)
    assert model.temperatures() == {"contrastive": pytest.approx(0.1), "fused_contrastive": pytest.approx(0.1)}
    assert model.head.num_parameters() == 0


def test_names_shapes_and_counts():
    model = deep()
    shapes = model.parameter_shapes()
    assert shapes["encoder.visual.0.weight"] == (16, 6)
    assert shapes["encoder.visual.1.weight"] == (12, 16)
    assert shapes["encoder.visual.1.bias"] == (12,)
    assert shapes["head.0.weight"] == (12, 12) and shapes["head.1.weight"] == (8, 12)
    assert shapes["contrastive.log_temperature"] == (1,) and shapes["fused_contrastive.log_temperature"] == (1,)
    names = list(shapes)
    assert names.index("encoder.action.1.bias") < names.index("head.0.weight") < names.index("fusion.0.weight")
    dims = model.config.input_dims
    encoders = sum(d * 16 + 16 + 16 * 12 + 12 for d in dims)
    assert model.encoder.num_parameters() == encoders
    assert model.head.num_parameters() == 12 * 12 + 12 + 12 * 8 + 8
    assert list(model.gradients()) == names
    state = model.state_dict()
    np.testing.assert_allclose(state["contrastive.log_temperature"], [np.log(0.2)], rtol=1e-6)
    assert model.temperatures()["contrastive"] == pytest.approx(0.2)
    assert not state["head.0.bias"].any(), "biases start at zero"


@pytest.mark.parametrize(
    "changes, arg",
    [
        (dict(encoder_hidden=(4, 0)), "encoder_hidden[1]"),
        (dict(shared_head=(16,)), "shared_head"),
        (dict(shared_head=(), encoder_output_dim=12), "encoder_output_dim"),
        (dict(encoder_input_dropout=1.0), "encoder_input_dropout"),
        (dict(encoder_hidden_dropout=-0.1), "encoder_hidden_dropout"),
        (dict(encoder_hidden=(), encoder_hidden_dropout=0.3), "encoder_hidden_dropout"),
        (dict(temperature=3.0), "temperature"),
    ],
)
def test_bad_options_name_the_argument(changes, arg):
    with pytest.raises(ValueError, match=r"^" + arg.replace("[", r"\[").replace("]", r"\]")):
        deep(**changes)


def test_the_recipes_hidden_dropout_follows_the_hidden_layers_unless_set(tmp_path, capsys):
    """The recipe's dropout after the hidden layers (0.3) applies where
    there are hidden layers: ``encoder_hidden=()`` alone was refused for an
    ``encoder_hidden_dropout`` nobody set (as ``encoder_skip``'s default
    follows the layers, :func:`uci.recipe_skip`), in the settings, the
    estimator and ``grapheme-mm train``; a dropout given beside no hidden
    layers is still refused, naming it, and the recipe's models are the same."""
    from grapheme_multimodal import uci
    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    small = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1)
    assert uci.TrainingSettings().model_options()["encoder_hidden_dropout"] == 0.3  # the recipe, unchanged
    assert uci.TrainingSettings(encoder_hidden=(16, 8)).model_options()["encoder_hidden_dropout"] == 0.3
    plain = uci.TrainingSettings(encoder_hidden=())
    assert plain.model_options()["encoder_hidden_dropout"] == 0.0
    data = views(40)
    model = uci.train(data, replace(plain, **small))
    assert model.config.encoder_hidden == () and model.config.encoder_hidden_dropout == 0.0
    with pytest.raises(ValueError, match=r"^encoder_hidden_dropout: got 0.3, but encoder_hidden is empty"):
        uci.train(data, replace(plain, encoder_hidden_dropout=0.3, **small))

    Xs = [v.astype(np.float64) for v in data.values()]
    est = MultimodalEmbedder(encoder_hidden=(), **small).fit(Xs)
    assert est.model_.config.encoder_hidden_dropout == 0.0
    assert MultimodalEmbedder(**small).fit(Xs).model_.config.encoder_hidden_dropout == 0.3
    with pytest.raises(ValueError, match=r"^encoder_hidden_dropout: got 0.2"):
        MultimodalEmbedder(encoder_hidden=(), encoder_hidden_dropout=0.2, **small).fit(Xs)

    ckpt = tmp_path / "m.safetensors"
    base = cli_train_args(tmp_path, data, ckpt)
    assert main(base + ["--encoder-hidden", ""]) == 0, capsys.readouterr().err
    assert gm.LearnableMultiModal.load(ckpt).config.encoder_hidden_dropout == 0.0
    assert main(base) == 0, capsys.readouterr().err
    assert gm.LearnableMultiModal.load(ckpt).config.encoder_hidden_dropout == 0.3
    assert main(base + ["--encoder-hidden", "", "--encoder-hidden-dropout", "0.3"]) == 2
    assert "--encoder-hidden-dropout: got 0.3, but --encoder-hidden is empty" in capsys.readouterr().err


def test_option_types():
    with pytest.raises(TypeError, match="encoder_hidden"):
        gm.LearnableMultiModalConfig(encoder_hidden="256")
    with pytest.raises(TypeError, match="learnable_temperature"):
        gm.LearnableMultiModalConfig(learnable_temperature=1)
    c = gm.LearnableMultiModalConfig(encoder_hidden=256, shared_head=[64], encoder_output_dim=np.int64(32))
    assert c.encoder_hidden == (256,) and c.shared_head == (64,) and type(c.encoder_output_dim) is int
    assert gm.LearnableMultiModalConfig.from_dict(c.to_dict()) == c


def _leaky(x):
    return np.where(x > 0, x, 0.01 * x)


def test_forward_matches_numpy_and_never_drops():
    model = deep()
    x = views(10)
    model.fit_normalization(x)
    emb, fused = model.encode_and_fuse(x)
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    for m, xm in x.items():
        mean, std = model.normalization(m)
        h = (xm - mean) / std
        h = _leaky(h @ state[f"encoder.{m}.0.weight"].T + state[f"encoder.{m}.0.bias"])
        h = h @ state[f"encoder.{m}.1.weight"].T + state[f"encoder.{m}.1.bias"]  # linear: the head follows
        h = _leaky(h @ state["head.0.weight"].T + state["head.0.bias"])
        h = h @ state["head.1.weight"].T + state["head.1.bias"]  # the head's last layer is linear
        h /= np.linalg.norm(h, axis=1, keepdims=True)
        np.testing.assert_allclose(emb[:, gm.Modality.parse(m).index], h, atol=2e-6)
    assert (emb[:, gm.Modality.parse(m).index] < 0).any(), "a linear last layer reaches every orthant"
    # The same model without dropout gives the same inference (dropout is for training only).
    plain = deep(encoder_input_dropout=0.0, encoder_hidden_dropout=0.0)
    plain.load_state_dict(model.state_dict())
    for m in x:
        plain.set_normalization(m, *model.normalization(m))
    e2, f2 = plain.encode_and_fuse(x)
    assert e2.tobytes() == emb.tobytes() and f2.tobytes() == fused.tobytes()


def test_huge_finite_inputs_encode_exactly_through_every_layer():
    """Inputs whose products overflow float32 are rescued by scaling (each
    layer is homogeneous once its bias is scaled too): the embeddings are
    those of float64 arithmetic, deep encoders and the shared head included."""
    model = deep()
    x = {"visual": (np.random.default_rng(1).uniform(-1, 1, size=(4, 6)) * 3e38).astype(np.float32)}
    emb = model.encode(x)[:, gm.Modality.VISUAL.index]
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    h = _leaky(x["visual"].astype(np.float64) @ state["encoder.visual.0.weight"].T + state["encoder.visual.0.bias"])
    h = h @ state["encoder.visual.1.weight"].T + state["encoder.visual.1.bias"]
    h = _leaky(h @ state["head.0.weight"].T + state["head.0.bias"])
    h = h @ state["head.1.weight"].T + state["head.1.bias"]
    np.testing.assert_allclose(emb, h / np.linalg.norm(h, axis=1, keepdims=True), atol=2e-6)


def test_dropout_trains_reproducibly_and_resumes_exactly(tmp_path):
    data = views(48)
    model = deep()
    evaluation, training = model.losses(data, weights={"contrastive": 1}), model.losses(data, weights={"contrastive": 1}, training=True)
    assert evaluation != training, "training=True applies the next backward's dropout"
    assert model.backward(data, weights={"contrastive": 1}) == training
    kwargs = dict(epochs=2, batch_size=16, progress=False)

    a, b = deep(), deep()
    a.fit(data, **kwargs)
    b.fit(data, **kwargs)
    for name, value in a.state_dict().items():
        assert value.tobytes() == b.state_dict()[name].tobytes(), name
    assert a.temperatures()["contrastive"] != pytest.approx(0.2, abs=1e-7), "the temperature learned"
    assert "temperature_contrastive" in a.history[-1]

    a = assert_resumes_exactly(deep, data, tmp_path, **kwargs)

    clone = pickle.loads(pickle.dumps(a))
    assert clone.config == a.config and clone.temperatures() == a.temperatures()
    x = views(5, seed=1)
    assert clone.encode_and_fuse(x)[1].tobytes() == a.encode_and_fuse(x)[1].tobytes()


def test_checkpoints_without_the_new_fields_still_load(tmp_path):
    """A checkpoint written before these options existed has none of them
    in its config; it loads as the original model."""
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, num_heads=2, input_dims=DIMS, seed=1)
    model.fit(views(32), epochs=1, batch_size=16, progress=False)
    path = tmp_path / "old.safetensors"
    save_without_config_fields(model, path, *CAPACITY)
    loaded = gm.LearnableMultiModal.load(path)
    assert loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()


def test_learned_temperature_stays_in_range():
    model = deep(encoder_input_dropout=0.0, encoder_hidden_dropout=0.0)
    data = views(32)
    for _ in range(30):
        model.train_step(data, weights={"contrastive": 1}, lr=2.0)
    theta = float(model.state_dict()["contrastive.log_temperature"][0])
    assert np.log(0.01) - 1e-6 <= theta <= 1e-6
    assert 0.01 - 1e-6 <= model.temperatures()["contrastive"] <= 1.0


def test_sklearn_estimator_and_cli_accept_the_options(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = [v.astype(np.float64) for v in views(40).values()]
    est = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=2, encoder_hidden=(8,),
                             encoder_output_dim=6, shared_head=(8,), encoder_hidden_dropout=0.2, learnable_temperature=True)
    assert clone(est).get_params()["shared_head"] == (8,)
    out = est.fit_transform(Xs)
    assert out.shape == (40, 8) and "head.0.weight" in est.model_.state_dict()

    ckpt = tmp_path / "m.safetensors"
    base = cli_train_args(tmp_path, views(40), ckpt)
    capacity = ["--encoder-hidden", "12", "--encoder-output-dim", "6", "--shared-head", "8,8",
                "--encoder-input-dropout", "0.1", "--encoder-hidden-dropout", "0.2",
                "--learnable-temperature", "--temperature", "0.07"]
    assert main(base + capacity) == 0, capsys.readouterr().err
    c = gm.LearnableMultiModal.load(ckpt).config
    assert (c.encoder_hidden, c.encoder_output_dim, c.shared_head, c.temperature) == ((12,), 6, (8, 8), 0.07)
    assert (c.encoder_input_dropout, c.encoder_hidden_dropout, c.learnable_temperature) == (0.1, 0.2, True)
    assert main(base + ["--encoder-hidden", "12,x"]) == 2
    assert "--encoder-hidden: expected comma-separated layer widths" in capsys.readouterr().err


def test_gradients_match_torch_autograd():
    """contrastive through deep encoders, the shared head and the learned
    temperature, against PyTorch autograd on the same weights (float64)."""
    torch = pytest.importorskip("torch")
    model = deep(encoder_input_dropout=0.0, encoder_hidden_dropout=0.0)
    data = views(24)
    model.backward(data, weights={"contrastive": 1})
    ours = model.gradients()
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.state_dict().items()}

    def embed(m, x):
        h = torch.tensor(x, dtype=torch.float64)
        h = torch.nn.functional.leaky_relu(h @ params[f"encoder.{m}.0.weight"].T + params[f"encoder.{m}.0.bias"], 0.01)
        h = h @ params[f"encoder.{m}.1.weight"].T + params[f"encoder.{m}.1.bias"]
        h = torch.nn.functional.leaky_relu(h @ params["head.0.weight"].T + params["head.0.bias"], 0.01)
        h = h @ params["head.1.weight"].T + params["head.1.bias"]
        return torch.nn.functional.normalize(h, dim=1, eps=1e-8)

    emb = [embed(m, x) for m, x in data.items()]
    tau = params["contrastive.log_temperature"].clamp(np.log(0.01), 0.0).exp()
    pairs = [(i, j) for i in range(3) for j in range(i + 1, 3)]
    labels = torch.arange(24)
    loss = sum(
        0.5 * (torch.nn.functional.cross_entropy(emb[i] @ emb[j].T / tau, labels)
               + torch.nn.functional.cross_entropy(emb[j] @ emb[i].T / tau, labels))
        for i, j in pairs
    ) / len(pairs)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(model.losses(data, weights={"contrastive": 1})["contrastive"], rel=1e-5)
    for name, p in params.items():
        reference = p.grad.numpy() if p.grad is not None else np.zeros(p.shape)
        scale = max(np.linalg.norm(reference), 1e-12)
        assert np.linalg.norm(ours[name] - reference) / scale < 1e-4 or scale < 1e-9, name


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_distributed_fit_carries_dropout_and_learned_temperature(request):
    """One Ray worker trains a deep model with dropout and learned
    temperatures bit for bit as model.fit does."""
    pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
    request.getfixturevalue("ray_session")
    from grapheme_multimodal import distributed

    data = views(64)
    options = dict(epochs=2, batch_size=16, progress=False, seed=2)
    local, remote = deep(), deep()
    local.fit(data, **options)
    distributed.fit(remote, data, num_workers=1, **options)
    for name, value in local.state_dict().items():
        assert value.tobytes() == remote.state_dict()[name].tobytes(), name
    assert local.optimizer_state()["rng_counter"] == remote.optimizer_state()["rng_counter"]


# ------------------------------------------- trust (issue 11) for the options
# Imported, not copied: the subprocess harness of the core's trust tests.
from test_trust_core import check_raised, expect_error, raised_in_one_child, same_state, state  # noqa: E402


HUGE_CAPACITIES = [
    ("gm.LearnableMultiModal(encoder_hidden=(10**12,))", "encoder_hidden[0]"),
    ("gm.LearnableMultiModal(encoder_hidden=(2**31, 2**31))", "encoder_hidden"),
    ("gm.LearnableMultiModal(encoder_hidden=(1,) * 10_000)", "encoder_hidden"),
    ("gm.LearnableMultiModal(shared_head=(2**32, 64))", "shared_head"),
    # The core checks by itself, whatever the Python layer let through.
    ("gm._core.Model(64, 128, 1e-3, 4, 10, 0, [18] * 7, encoder_hidden=[2**40])", "encoder_hidden[0]"),
    ("gm._core.Model(64, 128, 1e-3, 4, 10, 0, [18] * 7, encoder_hidden=[2**31, 2**31])", "encoder_hidden"),
    ("gm._core.Model(64, 128, 1e-3, 4, 10, 0, [18] * 7, encoder_output_dim=2**31, shared_head=[2**30, 64])",
     "encoder_output_dim"),
]


@pytest.fixture(scope="module")
def capacity_answers() -> dict:
    return raised_in_one_child([code for code, _ in HUGE_CAPACITIES])  # one child for the seven, not one each


@pytest.mark.parametrize("code, arg", HUGE_CAPACITIES)
def test_huge_capacity_is_a_too_large_error_not_an_abort(code, arg, capacity_answers):
    check_raised(capacity_answers[code], code, "TooLargeError", arg)


def test_bad_widths_are_invalid_value_errors_naming_the_layer():
    for options, arg in [(dict(encoder_hidden=(16, -3)), "encoder_hidden[1]"), (dict(shared_head=(0, 8)), "shared_head[0]"),
                         (dict(encoder_output_dim=-1), "encoder_output_dim")]:
        with pytest.raises(gm.InvalidValueError) as err:
            deep(**options)
        assert err.value.arg == arg


@pytest.mark.parametrize("name", ["encoder_input_dropout", "encoder_hidden_dropout"])
@pytest.mark.parametrize("value", [1.5, float("nan"), float("inf"), -0.1, 1.0])
def test_bad_dropout_rates_are_invalid_value_errors(name, value):
    with pytest.raises(gm.InvalidValueError) as err:
        deep(**{name: value})
    assert err.value.arg == name and name in str(err.value)
    if isinstance(value, float):  # the core refuses them by itself too
        with pytest.raises(gm.InvalidValueError) as err:
            gm._core.Model(8, 16, 1e-3, 2, 10, 0, [6] * 7, encoder_hidden=[4], **{name: value})
        assert err.value.arg == name


@pytest.mark.parametrize("name", ["encoder_input_dropout", "encoder_hidden_dropout"])
def test_a_dropout_rate_of_another_type_is_a_type_error(name):
    # a str is a wrong type: a TypeError, as the config's int fields refuse one
    with pytest.raises(TypeError, match=rf"^{name}: expected .*, got '0\.1' \(str\)$"):
        deep(**{name: "0.1"})


def test_a_checkpoint_with_an_impossible_capacity_is_a_clean_error(tmp_path):
    path = tmp_path / "m.safetensors"
    deep().save(path)
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)

    def forged(**config):  # a forger: the checksums are valid
        out = tmp_path / f"forged{len(list(tmp_path.iterdir()))}.safetensors"
        write_tagged_safetensors(out, tensors, FILE_FORMAT, {**meta, "config": {**meta["config"], **config}})
        return f"gm.LearnableMultiModal.load({str(out)!r})"

    # the argument given is the file's path; the message names the file, then the field too large
    for config, field in ((dict(shared_head=[2**32, 8]), "shared_head"), (dict(shared_head=[10**12, 8]), "shared_head[0]"),
                          (dict(encoder_hidden=[1] * 10_000), "encoder_hidden")):
        out = expect_error(forged(**config), "TooLargeError", "path")
        assert out["msg"].startswith("path: '") and f".safetensors': {field}" in out["msg"], out
    expect_error(forged(encoder_hidden_dropout=1.5), "CheckpointError", "path")


def test_learned_temperatures_are_all_or_nothing_and_checksummed(tmp_path):
    model = deep(encoder_input_dropout=0.0, encoder_hidden_dropout=0.0)
    data = views(32)
    model.train_step(data)
    # Set beyond its range by hand: loaded as its bound, the value the model computes with (s64: it was kept as
    # given, shown by state_dict, until an accepted step clamped it).
    with pytest.warns(UserWarning, match=r"contrastive.log_temperature'\]: 5.0 is beyond .* loaded as its bound 0"):
        model.load_state_dict({**model.state_dict(), "contrastive.log_temperature": np.array([5.0], np.float32)})
    assert model.state_dict()["contrastive.log_temperature"][0] == 0.0
    before = state(model)
    bad = {**data, "visual": data["visual"].copy()}
    bad["visual"][3, 0] = np.nan
    with pytest.raises(gm.NonFiniteError):
        model.train_step(bad)
    with pytest.raises(gm.InvalidValueError):
        model.train_step(data, lr=1e300)
    assert same_state(state(model), before), "a refused step changes nothing, the temperatures included"
    model.train_step(data)
    assert model.state_dict()["contrastive.log_temperature"][0] == 0.0, "kept at log 1 by the accepted step"
    assert all(np.isfinite(t).all() for t in model.state_dict().values())
    # The file's checksums cover the learned temperatures.
    theta = np.array([np.log(0.123)], np.float32)
    model.load_state_dict({**model.state_dict(), "fused_contrastive.log_temperature": theta})
    path = tmp_path / "m.safetensors"
    model.save(path)
    raw = bytearray(path.read_bytes())
    at = raw.find(theta.tobytes())
    assert at > 0 and raw.find(theta.tobytes(), at + 1) < 0
    raw[at] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(gm.CheckpointError):
        gm.LearnableMultiModal.load(path)
