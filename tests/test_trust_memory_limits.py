"""Forward calls under an address-space limit (``ulimit -v``, as batch
schedulers set): an input whose peak (inputs, the core's copies and
intermediates, outputs) does not fit is refused before the core allocates,
with a TooLargeError naming the argument. A Rust allocation that fails
aborts the whole process, where no Python ``try`` catches it, so every call
runs in a child under ``RLIMIT_AS``; a regression fails the test, not the run.
The same calls on small inputs, under the same limit, give the results they
give without one.
"""

import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import grapheme_multimodal as gm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")

_LIMIT = 1 << 30

#: Each call on `rows` rows of a default model (seed 0): embeddings [B, 7, E]
#: with three modalities present (the core copies them to zero the others;
#: np.zeros maps its pages lazily, so the children stay fast), a query [B, E].
_CALLS = {
    "attention_weights": "model.attention_weights(query, emb, mask, per_head=True)",
    "attend": "model.attend(query, emb, mask)",
    "fuse": "model.fuse(emb, mask)",
    "pair_strengths": "model.pair_strengths(emb, mask)",
    "pair_strengths_bilinear": "bilinear.pair_strengths(emb, mask)",
}

_SETUP = """
    model = gm.LearnableMultiModal(seed=0)
    bilinear = gm.LearnableMultiModal(seed=0, binder_kind="bilinear")
    def data(rows):
        emb = np.zeros((rows, 7, 64), np.float32)
        emb[:, :3, 0] = 1.0
        mask = np.zeros((rows, 7), bool)
        mask[:, :3] = True
        query = np.zeros((rows, 64), np.float32)
        query[:, 1] = 1.0
        return emb, mask, query
"""


def _child(code: str) -> str:
    """Runs ``code`` in a fresh interpreter under the address-space limit;
    its stdout, failing with its output unless it exits 0 (a Rust abort is
    SIGABRT: returncode -6)."""
    proc = _run_child(code)
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _run_child(code: str) -> subprocess.CompletedProcess:
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({_LIMIT}, {_LIMIT}))\n" \
              "import hashlib\nimport numpy as np\nimport grapheme_multimodal as gm\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(_SETUP) + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def _digest(result) -> str:
    return hashlib.sha256(np.ascontiguousarray(result).tobytes()).hexdigest()


def _each_call(setup: str, template: str) -> dict:
    """Runs ``setup``, then ``template`` for each of :data:`_CALLS` (``{call}``:
    its code), in one child: one interpreter start for the five calls, not
    five. Each call's output, by name. A call that ends the child (a Rust
    abort) gets the child's exit status and stderr instead, for its test to
    fail with; the calls after it run in a new child."""
    outputs: dict = {}
    names = sorted(_CALLS)
    while names:
        body = textwrap.dedent(setup) + "".join(
            f"print({'--- ' + name!r}, flush=True)\n" + textwrap.dedent(template).format(call=_CALLS[name])
            for name in names
        )
        proc = _run_child(body)
        name = None
        for line in proc.stdout.splitlines(keepends=True):
            if line.startswith("--- "):
                name = line[4:].strip()
                outputs[name] = ""
            else:
                outputs[name] += line
        if proc.returncode != 0:
            if name is None:  # before the first call: the setup failed
                raise AssertionError(f"child exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}")
            outputs[name] = f"child exited {proc.returncode} in this call:\n{outputs[name]}\n{proc.stderr[-3000:]}"
        names = [n for n in names if n not in outputs]
    return outputs


@pytest.fixture(scope="module")
def too_large_outputs() -> dict:
    # 2**18 rows: the embeddings take 470 MB, and the core's copy of them (and
    # the attention's K and V) went past 1 GiB: the process aborted.
    return _each_call("""
        emb, mask, query = data(2**18)
    """, """
        try:
            {call}
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        else:
            print("no error")
    """)


@pytest.mark.parametrize("call", sorted(_CALLS))
def test_too_large_for_the_address_space_is_refused_naming_the_argument(call, too_large_outputs):
    out = too_large_outputs[call]
    arg, message = out.splitlines()[:2]
    assert arg == "embeddings", out
    assert message.startswith("embeddings: ") and "bytes at its peak" in message and "expected fewer rows" in message, out


@pytest.fixture(scope="module")
def small_outputs() -> dict:
    return _each_call("""
        emb, mask, query = data(1000)
    """, """
        result = {call}
        print(hashlib.sha256(np.ascontiguousarray(result).tobytes()).hexdigest())
    """)


@pytest.mark.parametrize("call", sorted(_CALLS))
def test_small_inputs_under_the_limit_give_the_same_results(call, small_outputs):
    out = small_outputs[call]
    model = gm.LearnableMultiModal(seed=0)
    bilinear = gm.LearnableMultiModal(seed=0, binder_kind="bilinear")
    emb = np.zeros((1000, 7, 64), np.float32)
    emb[:, :3, 0] = 1.0
    mask = np.zeros((1000, 7), bool)
    mask[:, :3] = True
    query = np.zeros((1000, 64), np.float32)
    query[:, 1] = 1.0
    assert out.strip() == _digest(eval(_CALLS[call]))


def test_bind_too_large_for_the_address_space_is_refused_naming_a():
    # The bilinear binder's a·W [B, E]: 2**21 rows of a take 512 MB, and a·W
    # as much again went past 1 GiB: the process aborted.
    out = _child("""
        a = np.zeros((2**21, 64), np.float32)
        try:
            bilinear.bind(a, a)
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        small = np.full((1000, 64), 0.125, np.float32)
        print(hashlib.sha256(bilinear.bind(small, small[::-1].copy()).tobytes()).hexdigest())
    """)
    arg, message, digest = out.splitlines()[:3]
    assert arg == "a" and message.startswith("a: bind on 2,097,152 rows takes "), out
    small = np.full((1000, 64), 0.125, np.float32)
    assert digest == _digest(gm.LearnableMultiModal(seed=0, binder_kind="bilinear").bind(small, small[::-1].copy()))


def test_hidden_features_too_large_for_the_address_space_is_refused_naming_inputs():
    # The hidden layers run over the whole batch: beside the output [B, 7, 32]
    # (allocated fallibly), 900,000 rows' activations [B, 32] went past 1 GiB
    # and the process aborted.
    out = _child("""
        hidden = gm.LearnableMultiModal(seed=0, encoder_hidden=(32,))
        x = np.zeros((900_000, 18), np.float32)
        try:
            hidden.hidden_features({"visual": x})
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        small = np.linspace(-1, 1, 18 * 1000, dtype=np.float32).reshape(1000, 18)
        print(hashlib.sha256(hidden.hidden_features({"visual": small, "auditory": small}).tobytes()).hexdigest())
    """)
    arg, message, digest = out.splitlines()[:3]
    assert arg == "inputs" and message.startswith("inputs: hidden_features on 900,000 rows takes "), out
    small = np.linspace(-1, 1, 18 * 1000, dtype=np.float32).reshape(1000, 18)
    expected = gm.LearnableMultiModal(seed=0, encoder_hidden=(32,)).hidden_features({"visual": small, "auditory": small})
    assert digest == _digest(expected)


@pytest.mark.parametrize("call", ["train_step", "backward"])
def test_training_batch_too_large_for_the_address_space_is_refused_naming_inputs(call):
    # The core computes a training batch whole (encoder tapes, the attention's
    # and fusion's activations and their gradients): 60,000 rows of two
    # modalities under 1 GiB aborted the process.
    out = _child(f"""
        x = np.zeros((60_000, 18), np.float32)
        try:
            model.{call}({{"visual": x, "auditory": x}}, weights={{"cross_modal": 1.0}})
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        small = np.linspace(-1, 1, 18 * 64, dtype=np.float32).reshape(64, 18)
        print(model.{call}({{"visual": small, "auditory": small[::-1].copy()}}))
        print(hashlib.sha256(b"".join(g.tobytes() for g in model.gradients().values())).hexdigest())
    """)
    arg, message, losses, grads = out.splitlines()[:4]
    assert arg == "inputs" and message.startswith("inputs: a training batch of 60,000 rows may take "), out
    small = np.linspace(-1, 1, 18 * 64, dtype=np.float32).reshape(64, 18)
    fresh = gm.LearnableMultiModal(seed=0)
    expected = getattr(fresh, call)({"visual": small, "auditory": small[::-1].copy()})
    # the refused call left the model as it was: the same losses and gradients as a fresh model's
    assert losses == str(expected)
    assert grads == hashlib.sha256(b"".join(g.tobytes() for g in fresh.gradients().values())).hexdigest()


def test_record_batch_too_large_for_the_address_space_is_refused_naming_inputs():
    # encode_and_fuse allocates its outputs fallibly; the pair strengths
    # computed beside them (the core's copy of the embeddings) went past 1 GiB
    # for 250,000 rows and the process aborted.
    out = _child("""
        small_buffer = gm.LearnableMultiModal(seed=0, buffer_size=10)
        x = np.zeros((250_000, 18), np.float32)
        try:
            small_buffer.record_batch({"visual": x, "auditory": x})
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        print(len(small_buffer.experience))
        small = np.linspace(-1, 1, 18 * 8, dtype=np.float32).reshape(8, 18)
        small_buffer.record_batch({"visual": small, "auditory": small})
        print(hashlib.sha256(small_buffer.experience.batch().pair_strengths.tobytes()).hexdigest())
    """)
    arg, message, recorded, digest = out.splitlines()[:4]
    assert arg == "inputs" and message.startswith("inputs: record_batch's pair_strengths on 250,000 rows takes "), out
    assert recorded == "0"  # nothing was recorded
    fresh = gm.LearnableMultiModal(seed=0, buffer_size=10)
    small = np.linspace(-1, 1, 18 * 8, dtype=np.float32).reshape(8, 18)
    fresh.record_batch({"visual": small, "auditory": small})
    assert digest == hashlib.sha256(fresh.experience.batch().pair_strengths.tobytes()).hexdigest()


@pytest.mark.parametrize("call", ["encode", "encode_and_fuse"])
def test_encode_too_large_for_the_address_space_is_refused_naming_inputs(call):
    # The outputs are allocated fallibly, but a modality absent in some rows
    # is copied and encoded whole (not in chunks): 400,000 rows under 1 GiB
    # aborted the process.
    out = _child(f"""
        wide = gm.LearnableMultiModal(seed=0, encoder_hidden=(256,))
        def partial(rows):
            x = np.linspace(-1, 1, 18 * rows, dtype=np.float32).reshape(rows, 18)
            mask = np.zeros((rows, 7), bool)
            mask[::2, 0] = True
            mask[:, 1] = True
            return {{"visual": x, "auditory": x}}, mask
        try:
            wide.{call}(*partial(400_000))
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        result = wide.{call}(*partial(1000))
        print(hashlib.sha256(np.ascontiguousarray(result[-1] if isinstance(result, tuple) else result).tobytes()).hexdigest())
    """)
    arg, message, digest = out.splitlines()[:3]
    assert arg == "inputs" and message.startswith(f"inputs: {call} on 400,000 rows takes "), out
    x = np.linspace(-1, 1, 18 * 1000, dtype=np.float32).reshape(1000, 18)
    mask = np.zeros((1000, 7), bool)
    mask[::2, 0] = True
    mask[:, 1] = True
    result = getattr(gm.LearnableMultiModal(seed=0, encoder_hidden=(256,)), call)({"visual": x, "auditory": x}, mask)
    assert digest == _digest(result[-1] if isinstance(result, tuple) else result)


_EVENT = """
    def event(n=18, modality="visual"):
        return gm.MultiModalEvent(1, [gm.ModalFeatures(np.linspace(-1, 1, n, dtype=np.float32), modality),
                                      gm.ModalFeatures(np.linspace(1, -1, 18, dtype=np.float32), "auditory")])
"""


def _small_event_digest() -> str:
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.linspace(-1, 1, 18, dtype=np.float32), "visual"),
                                   gm.ModalFeatures(np.linspace(1, -1, 18, dtype=np.float32), "auditory")])
    return _digest(gm.LearnableMultiModal(seed=0).fuse_event(event))


@pytest.mark.parametrize("call", ["fuse_event", "encode_event"])
def test_event_with_a_huge_wrong_length_vector_is_refused_naming_the_event(call):
    # The core copied a feature vector before checking its length: 100 million
    # values (400 MB, then the key's bytes and the copy) under 1 GiB aborted
    # the process instead of saying the length is wrong.
    out = _child(textwrap.dedent(_EVENT) + textwrap.dedent(f"""
        huge = gm.MultiModalEvent(1, [gm.ModalFeatures(np.zeros(100_000_000, np.float32), "visual")])
        try:
            model.{call}(huge)
        except gm.ShapeError as exc:
            print(exc.arg)
            print(exc)
        del huge
        print(hashlib.sha256(model.fuse_event(event()).tobytes()).hexdigest())
    """))
    arg, message, digest = out.splitlines()[:3]
    assert arg == "event" and "takes 18-long feature vectors, got ModalFeatures of shape (100000000,)" in message, out
    assert digest == _small_event_digest()


def test_event_of_many_wide_components_too_large_for_the_address_space_is_refused_naming_the_event():
    # 3,000 components of 20,000 features (240 MB, and as much again in the
    # cache key's bytes): the core's copy of the rows and the encoder's
    # standardised copy went past 1 GiB and the process aborted.
    out = _child("""
        wide = gm.LearnableMultiModal(seed=0, input_dims={"visual": 20_000})
        def event(k):
            return gm.MultiModalEvent(7, [gm.ModalFeatures(np.linspace(-1, 1, 20_000, dtype=np.float32), "visual", confidence=0.5)
                                          for _ in range(k)])
        try:
            wide.fuse_event(event(3000))
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        print(hashlib.sha256(wide.fuse_event(event(1000)).tobytes()).hexdigest())
    """)
    arg, message, digest = out.splitlines()[:3]
    assert arg == "event" and message.startswith("event: encoding event 7's 3,000 components takes "), out
    wide = gm.LearnableMultiModal(seed=0, input_dims={"visual": 20_000})
    event = gm.MultiModalEvent(7, [gm.ModalFeatures(np.linspace(-1, 1, 20_000, dtype=np.float32), "visual", confidence=0.5)
                                   for _ in range(1000)])
    assert digest == _digest(wide.fuse_event(event))


@pytest.mark.parametrize("call", ["train_step", "losses"])
def test_contrastive_logits_beyond_the_address_space_are_refused_naming_inputs(call):
    # The core checks the [B, B] logits against the memory budget only: with
    # 700 MB already held under 1 GiB, a 6,600-row batch's logits (174 MB
    # each) passed it and the training preflight (small embeddings), and
    # their allocation aborted the process.
    out = _child(f"""
        small = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=1)
        held = np.ones(700 * 2**20, np.uint8)
        x = np.linspace(-1, 1, 6600 * 18, dtype=np.float32).reshape(6600, 18)
        try:
            small.{call}({{"visual": x, "auditory": x[::-1].copy()}}, weights={{"contrastive": 1.0}})
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        del held
        x = x[:64].copy()
        print(small.{call}({{"visual": x, "auditory": x[::-1].copy()}}, weights={{"contrastive": 1.0}}))
    """)
    arg, message, losses = out.splitlines()[:3]
    assert arg == "inputs" and message.startswith("inputs: a batch of 6,600 rows: the contrastive objectives' [B, B] logits"), out
    x = np.linspace(-1, 1, 6600 * 18, dtype=np.float32).reshape(6600, 18)[:64].copy()
    fresh = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=1)
    assert losses == str(getattr(fresh, call)({"visual": x, "auditory": x[::-1].copy()}, weights={"contrastive": 1.0}))
