"""Session 57's hostile audit of the public API (each test failed before its fix)."""
import io
import sys

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.training import History


def _small_model(**kwargs):
    return gm.LearnableMultiModal(input_dims={"visual": 8}, embed_dim=16, hidden_dim=16, num_heads=2, seed=0, **kwargs)


def _views(n=24):
    rng = np.random.default_rng(0)
    return {"visual": rng.normal(size=(n, 8)), "auditory": rng.normal(size=(n, 18))}


# 1. reprs that printed every value ------------------------------------------------------------------------------

def test_weight_average_repr_counts_its_tensors():
    # the dataclass's repr printed every tensor of the average and of the trained weights: 49 kB (766 lines)
    # for the default model, what a notebook shows for `model.weight_average`
    model = _small_model()
    model.fit(_views(), epochs=2, ema_decay=0.9, progress=False)
    n, k = model.num_parameters(), len(model.weight_average.mean)
    assert k > 20
    text = repr(model.weight_average)
    assert text == f"WeightAverage(decay=0.9, count=2, mean=<{k} tensors, {n:,} values>, trained=<{k} tensors, {n:,} values>)"
    assert "trained=None" in repr(gm.averaging.WeightAverage(decay=0.5, count=1, mean=dict(model.weight_average.mean)))


def test_history_repr_shows_the_ends_of_a_long_fit():
    # the dataclass's repr printed every epoch's record: 65 kB after the recipe's 300 epochs, shown whole by a
    # notebook for a `model.fit(...)` that ends a cell
    epochs = [{"epoch": i + 1, "loss": 1.0 / (i + 1), "val_total": 2.0} for i in range(300)]
    history = History(epochs=epochs, monitor="val_total", best_epoch=95, stopped_early=True,
                      cv_curve=[1.0] * 300)
    text = repr(history)
    assert len(text) < 1_000
    assert text.startswith("History(epochs=[{'epoch': 1, 'loss': 1.0, 'val_total': 2.0}, {'epoch': 2, ")
    assert ", ... 296 more, {'epoch': 299, " in text and "{'epoch': 300, " in text
    assert text.endswith(", monitor='val_total', best_epoch=95, stopped_early=True, cv_curve=[1.0, 1.0, 1.0, 1.0, "
                         "1.0, ... 295 more])")
    # a short one reads as the dataclass wrote it
    short = History(epochs=[{"epoch": 1, "loss": 1.0}], best_epoch=1)
    assert repr(short) == ("History(epochs=[{'epoch': 1, 'loss': 1.0}], monitor=None, best_epoch=1, "
                           "stopped_early=False, cv_curve=None)")


def test_experience_reprs_show_arrays_by_shape():
    # record_fusion returns an Experience, whose repr printed every value (some 15 kB for the default model,
    # what a notebook shows for each call); a sample of 32 rows of a small model's buffer printed 45 kB
    model = gm.LearnableMultiModal(seed=0)
    event = gm.MultiModalEvent(7)
    event.add_component(gm.ModalFeatures(np.ones(18), "visual"))
    text = repr(model.record_fusion(event, 1.0))
    assert text == (
        "Experience(embeddings=array(shape=(7, 64), dtype=float32), mask=array(shape=(7,), dtype=bool), "
        "fused=array(shape=(64,), dtype=float32), pair_strengths=array(shape=(7, 7), dtype=float32), "
        "reward=1.0, event_id=7, inputs=[array(shape=(18,), dtype=float32), None, None, None, None, None, None])")
    model.record_batch({"visual": np.random.default_rng(0).normal(size=(40, 18))}, None, rewards=np.ones(40))
    text = repr(model.experience.sample(32))
    assert len(text) < 1_500
    assert text.startswith("ExperienceBatch(embeddings=array(shape=(32, 7, 64), dtype=float32), ")
    assert "rewards=array(shape=(32,), dtype=float32)" in text


# 2. refused priorities: the message listed three of them, as if that were all ----------------------------------

def test_refused_priorities_say_how_many_more_there_are():
    # update_priorities(batch, [0, 0, 0, 0]) said "got [0.0, 0.0, 0.0]": three values, for four given
    model = _small_model()
    model.record_batch({"visual": np.random.default_rng(0).normal(size=(10, 8))}, None, rewards=np.ones(10))
    batch = model.experience.sample(6)
    with pytest.raises(gm.InvalidValueError, match=r"^priorities: expected finite numbers > 0, got \[0\.0, 0\.0, nan, "
                                                   r"\.\.\. 2 more\]$"):
        model.experience.update_priorities(batch, [0.0, 0.0, np.nan, 1.0, -1.0, 0.0])
    with pytest.raises(gm.InvalidValueError, match=r"got \[0\.0, nan\]$"):  # three or fewer: all of them, as before
        model.experience.update_priorities(batch, [0.0, np.nan, 1.0, 1.0, 1.0, 1.0])


# 3. a progress bar whose stream fails ------------------------------------------------------------------------------

class _FailingStream(io.TextIOBase):
    """A stderr whose writes fail once ``ok`` of them went through (a pipe whose reader went away)."""

    def __init__(self, ok, error):
        self.ok, self.error, self.writes = ok, error, 0

    def write(self, text):
        self.writes += 1
        if self.writes > self.ok:
            raise self.error
        return len(text)

    def flush(self):
        if self.writes > self.ok:
            raise self.error

    def close(self):  # collected at exit: io's finalizer flushed it, "Exception ignored ... Broken pipe" printed
        pass


def test_fit_survives_a_stderr_that_fails_while_it_trains(monkeypatch):
    # a write of the progress bar that failed (here at its close, after the last epoch) failed the fit, which
    # then put the model back as it was: every epoch's training lost to its progress bar
    reference = _small_model()
    reference.fit(_views(), epochs=3, batch_size=8, progress=False)
    model = _small_model()
    stream = _FailingStream(1, BrokenPipeError(32, "Broken pipe"))  # tqdm lets it through (EIO it stops at)
    monkeypatch.setattr(sys, "stderr", stream)
    history = model.fit(_views(), epochs=3, batch_size=8, progress=True)
    monkeypatch.undo()
    assert len(history.epochs) == 3 and model.epochs_trained == 3
    assert stream.writes == 2  # the bar's first drawing, then one that failed: nothing more was written
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)


def test_fit_survives_a_closed_stderr(monkeypatch, tmp_path):
    # a stderr closed under the program (not None: sys.stderr still names the closed file) refused every fit,
    # "ValueError: I/O operation on closed file." from the bar's first flush
    closed = open(tmp_path / "err.txt", "w")
    closed.close()
    model = _small_model()
    monkeypatch.setattr(sys, "stderr", closed)
    history = model.fit(_views(), epochs=2, batch_size=8, progress=True)
    monkeypatch.undo()
    assert len(history.epochs) == 2 and model.epochs_trained == 2


def test_progress_bar_still_drawn_on_stderr(capsys):
    _small_model().fit(_views(), epochs=1, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "fit" in err and "step" in err


# 4. a history record named by a number ------------------------------------------------------------------------------

def test_save_refusing_a_record_named_by_a_number_names_the_name(tmp_path):
    # model.history.append({"epoch": 2, 1: 2.0}) was refused as "got 2.0 (float) under 1": the value blamed,
    # though 2.0 is a number; it is the name 1 that is no str
    model = _small_model()
    model.history.append({"epoch": 2, 1: 2.0})
    with pytest.raises(gm.InvalidValueError, match=r"^model\.history\[0\]: expected a record of numbers by name "
                                                   r"\(floats, or ints a float holds\), got the name 1 \(int\), not a "
                                                   r"str, in \{'epoch': 2, 1: 2\.0\}$"):
        model.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    model.history[0] = {"epoch": 2, "loss": "x"}  # a value: named as before
    with pytest.raises(gm.InvalidValueError, match=r"got 'x' \(str\) under 'loss' in "):
        model.save(tmp_path / "m.safetensors")


# 5. a buffer state of another generator --------------------------------------------------------------------------

def test_buffer_state_of_another_generator_says_which(tmp_path):
    # an MT19937 state (what np.random.RandomState keeps) was refused as "got dict", the kind of object
    # that was right; the generator it names is what is wrong
    model = _small_model()
    model.record_batch({"visual": np.random.default_rng(0).normal(size=(4, 8))}, None, rewards=np.ones(4))
    tensors, meta = model.experience.state()
    meta = dict(meta, rng_state=np.random.Generator(np.random.MT19937(0)).bit_generator.state)
    with pytest.raises(gm.InvalidValueError, match=r"rng_state: expected a PCG64 generator state, got the state of "
                                                   r"bit_generator 'MT19937'"):
        gm.ExperienceBuffer.from_state(tensors, meta)
    with pytest.raises(gm.InvalidValueError, match=r"got a mapping without 'bit_generator'"):
        gm.ExperienceBuffer.from_state(tensors, dict(meta, rng_state={"state": 1}))


def test_tqdm_write_from_a_metric_still_clears_the_bar(capsys):
    # tqdm.write clears the bars drawn on stderr before it prints: it finds them by comparing their files with
    # sys.stderr, which the stream behind fit's bar must still compare equal to
    import tqdm

    found = []

    def metric(model):
        found.extend(bar for bar in tqdm.tqdm._instances if bar.fp in (sys.stdout, sys.stderr))
        tqdm.tqdm.write("a message")
        return 0.0

    _small_model().fit(_views(), epochs=1, batch_size=8, progress=True, metrics={"m": metric})
    assert found
    assert "a message" in capsys.readouterr().out


# 6. inputs of the wrong number of entries -------------------------------------------------------------------------

def test_buffer_inputs_of_six_entries_say_six():
    # extend(..., inputs=[a list of 6]) was refused as "expected 7 entries (None where absent), got list": a
    # list is what it takes; its length is what is wrong
    model = _small_model()
    model.record_batch({"visual": np.random.default_rng(0).normal(size=(3, 8))}, None, rewards=np.ones(3))
    b = model.experience.batch()
    with pytest.raises(gm.ShapeError, match=r"^inputs: expected 7 entries \(None where absent\), got a list of 6$"):
        model.experience.extend(b.embeddings, b.mask, b.fused, b.pair_strengths, b.rewards, None, b.inputs[:6])
    experience = model.experience[0]
    experience.inputs = tuple(experience.inputs[:6])
    with pytest.raises(gm.ShapeError, match=r"^experience\.inputs: expected 7 entries \(None where absent\), got a "
                                             r"tuple of 6$"):
        model.experience.append(experience)
    assert len(model.experience) == 3


def test_inputs_as_a_list_of_two_views_say_how_a_list_is_read():
    # model.encode([x_visual, x_auditory]) (views as a list, scikit-learn's habit) was refused as "expected a
    # mapping modality -> array or a sequence of 7 arrays/None, got list": a list is taken, of 7
    model = _small_model()
    views = _views(4)
    with pytest.raises(TypeError, match=r"^inputs: expected a mapping modality -> array or a sequence of 7 "
                                        r"arrays/None, got a list of 2 \(a sequence is read by slot, one entry per "
                                        r"modality; name the modalities given in a dict, e\.g\. \{'visual': x\}\)$"):
        model.encode([views["visual"], views["auditory"]])
    with pytest.raises(TypeError, match=r"^data: .*got a tuple of 2 \("):
        model.fit((views["visual"], views["auditory"]), epochs=1, progress=False)
    assert model.epochs_trained == 0


def test_a_buffer_sample_given_to_train_step_says_how_it_trains():
    # train_step(model.experience.sample(8)) said "got ExperienceBatch" and nothing of Batch.from_experiences
    model = _small_model()
    model.record_batch(_views(8), None, rewards=np.ones(8))
    sample = model.experience.sample(8)
    with pytest.raises(TypeError, match=r"^inputs: expected a mapping modality -> array or a sequence of 7 "
                                        r"arrays/None, got ExperienceBatch; a sample of the experience buffer trains "
                                        r"as Batch\.from_experiences\(sample\)$"):
        model.train_step(sample)
    assert model.optimizer_state()["step"] == 0
    model.train_step(gm.Batch.from_experiences(sample))
    assert model.optimizer_state()["step"] == 1
