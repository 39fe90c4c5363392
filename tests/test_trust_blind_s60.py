"""A blind hostile review (s60): the library used as its README and
docstrings invite, by someone who had not read the tests. Each test says
what a user saw before the fix."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_fit import small_model


def _events(n: int) -> list:
    """``n`` events of a visual vector and a linguistic text each."""
    rng = np.random.default_rng(0)
    events = []
    for i in range(n):
        event = gm.MultiModalEvent(i)
        event.add_component(gm.ModalFeatures(rng.normal(size=20), "visual"))
        event.add_component(gm.ModalGraph(gm.Graph.from_text("abc"[: i % 3 + 1]), gm.Modality.LINGUISTIC))
        events.append(event)
    return events


@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("call", ["train_step", "losses", "backward", "encode", "encode_and_fuse", "record_batch"])
def test_a_list_of_events_where_inputs_are_expected_says_how_events_are_passed(n, call):
    """``fit(events)`` trains on a list of events, so a user passes the same
    list to ``train_step``. Four events were "expected a mapping modality ->
    array or a sequence of 7 arrays/None, got a list of 4 (a sequence is
    read by slot ...)", and seven were read as the 7 modalities' arrays:
    "inputs['visual']: expected a real-valued numeric array, got array of
    shape () and dtype object (one MultiModalEvent: <the whole event's
    repr>)". Either way nothing said that events go in as a Batch of
    events. Now a ``TypeError`` names ``inputs``, the events given and how
    they are taken, and the model is left as it was."""
    model = small_model()
    before = model.state_dict()
    with pytest.raises(TypeError, match=rf"^inputs: got a list of {n} MultiModalEvent; expected per-modality arrays; "
                                        r"events are taken as Batch\.from_events\(events\)"):
        getattr(model, call)(_events(n))
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.num_experiences() == 0
    model.train_step(gm.Batch.from_events(_events(n)))  # the way the message points to


def test_events_given_as_one_modalitys_array_say_how_events_are_passed():
    """``encode({"visual": events})`` (or ``fit`` of such a dict) said
    "inputs['visual']: expected a real-valued numeric array, got array of
    shape (3,) and dtype object (at index 0: MultiModalEvent ...)", with the
    event's features printed; now it says how events are taken."""
    model = small_model()
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: got a list of 3 MultiModalEvent; expected per-modality "
                                        r"arrays; events are taken as Batch\.from_events\(events\)"):
        model.encode({"visual": _events(3)})
    with pytest.raises(TypeError, match=r"^data\['visual'\]: got a list of 3 MultiModalEvent; .* or by fit\(events\)"):
        model.fit({"visual": _events(3)}, epochs=1, progress=False)
    assert model.epochs_trained == 0


def test_a_batch_given_events_as_its_inputs_is_refused_when_made():
    """``Batch(inputs=events)`` was made without a word (its repr printing
    every event's features), and failed only in ``train_step``; now it is
    refused when made, pointing to ``Batch(events=...)``."""
    with pytest.raises(TypeError, match=r"^inputs: got a list of 3 MultiModalEvent; .*Batch\.from_events\(events\)"):
        gm.Batch(inputs=_events(3))
    assert gm.Batch(events=_events(3)).batch_size == 3


def test_exact_cca_works_in_a_scikit_learn_pipeline_as_scikit_learns_cca_does():
    """ExactCCA's interface is scikit-learn's ``CCA`` (its docstring), and
    ``make_pipeline(StandardScaler(), CCA(2)).fit(X, Y)`` is the usual way
    to scale before it; with ExactCCA in its place scikit-learn 1.7 and
    later raised "'ExactCCA' object has no attribute '__sklearn_tags__'"
    (1.6 only warned). It now has scikit-learn's tags: a transformer that
    needs its ``Y``, so the pipeline fits and transforms as the two steps
    by hand do."""
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from grapheme_multimodal.evaluation import ExactCCA

    rng = np.random.default_rng(0)
    z = rng.normal(size=(100, 2))
    x = z @ rng.normal(size=(2, 6)) * 5 + 3 + 0.1 * rng.normal(size=(100, 6))
    y = z @ rng.normal(size=(2, 4)) + 0.1 * rng.normal(size=(100, 4))
    pipeline = make_pipeline(StandardScaler(), ExactCCA(2)).fit(x, y)
    by_hand = ExactCCA(2).fit(StandardScaler().fit_transform(x), y)
    np.testing.assert_array_equal(pipeline.transform(x), by_hand.transform(StandardScaler().fit(x).transform(x)))
    np.testing.assert_array_equal(pipeline[-1].correlations_, by_hand.correlations_)
    assert clone(pipeline).fit(x, y)[-1].correlations_.tolist() == by_hand.correlations_.tolist()
    # fitted without its second view (a pipeline's fit(X) passes Y=None): was "Y: expected a real-valued numeric
    # array, got array of shape () and dtype object (one NoneType: None)"
    with pytest.raises(TypeError, match=r"^Y: got None; expected the second view, an \[n, q\] array of the rows of X"):
        make_pipeline(StandardScaler(), ExactCCA(2)).fit(x)


def test_a_history_answers_in_and_refuses_iteration_and_positions_by_saying_what_it_holds():
    """``history["loss"]`` reads a value per epoch, so ``"val_total" in
    history`` is the natural test of whether validation ran: it raised
    ``KeyError: "history[0]: not recorded ..."`` (Python's old iteration
    protocol calling ``history[0]``), as did ``list(history)`` and a
    ``for`` loop, and ``history[-1]`` (the last epoch, as in a list) said
    only that ``-1`` was not recorded. Now ``in`` answers whether any epoch
    recorded the name, iterating is a ``TypeError`` and a position a
    ``KeyError``, both pointing to ``history.epochs``."""
    model = small_model()
    data = {"visual": np.random.default_rng(0).normal(size=(16, 20)),
            "auditory": np.random.default_rng(1).normal(size=(16, 12))}
    history = model.fit(data, epochs=2, progress=False)
    assert "loss" in history and "contrastive" in history
    assert "val_total" not in history and 0 not in history
    with pytest.raises(TypeError, match=r"^History: expected history\.epochs to iterate over \(one record per epoch\)"):
        list(history)
    with pytest.raises(KeyError, match=r"history\[-1\]: expected the name of a recorded value .*'loss'.*; the epochs' "
                                       r"records are history\.epochs, e\.g\. history\.epochs\[-1\]"):
        history[-1]
    with pytest.raises(KeyError, match=r"history\['val_total'\]: not recorded"):
        history["val_total"]
    assert history["loss"] == [e["loss"] for e in history.epochs]


def test_save_ensemble_given_the_estimator_or_one_model_says_what_to_pass(tmp_path):
    """The README saves an estimator's members with
    ``gm.save_ensemble(estimator.models_, path)``; given the estimator
    itself (or one model) it said only "expected a sequence of
    LearnableMultiModal, got MultimodalEmbedder", where an ensemble of
    embedders is told where its models are. Now it says so too."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    views = [rng.normal(size=(40, 6)), rng.normal(size=(40, 4))]
    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, encoder_hidden=(8,),
                                   shared_head=(8,)).fit(views)
    path = tmp_path / "members.safetensors"
    with pytest.raises(TypeError, match=r"got MultimodalEmbedder; a MultimodalEmbedder's fitted models are "
                                        r"estimator\.models_: save_ensemble\(estimator\.models_, path\)$"):
        gm.save_ensemble(estimator, path)
    with pytest.raises(TypeError, match=r"got LearnableMultiModal; one model is saved with model\.save\(path\), or as "
                                        r"an ensemble of one: save_ensemble\(\[model\], path\)$"):
        gm.save_ensemble(estimator.model_, path)
    assert not path.exists()
    gm.save_ensemble(estimator.models_, path)
    assert len(gm.load_ensemble(path)) == 1


def _reversed_table(table):
    return table.select(table.column_names[::-1])


def test_the_estimator_keeps_a_pyarrow_tables_column_names_as_scikit_learn_does():
    """scikit-learn keeps a pyarrow table's column names as feature names
    and refuses them reordered; MultimodalEmbedder read the table's
    ``columns`` (its arrays) for names, so a view fitted from a table
    (``pq.read_table``) and transformed from the same table with its columns
    in another order gave other embeddings without a word, and one fitted
    from the pandas frame warned that the table "does not have valid
    feature names". Now both are refused as a reordered frame is."""
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("sklearn")
    import warnings

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    x, other = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    table = pa.table({f"c{j}": x[:, j] for j in range(5)})
    settings = dict(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, encoder_hidden=(8,), shared_head=(8,))
    for fitted_on in (table, table.to_pandas()):
        estimator = MultimodalEmbedder(**settings).fit([fitted_on, other])
        with pytest.warns(UserWarning, match=r"Xs\[0\] does not have valid feature names"):  # an array: as scikit-learn
            before = estimator.transform([x, other])
        with pytest.raises(gm.InvalidValueError, match=r"^Xs\[0\]: columns \['c4', 'c3', 'c2', 'c1', 'c0'\]; expected "
                                                       r"those seen in fit, in that order: \['c0', 'c1', 'c2', 'c3', 'c4'\]"):
            estimator.transform([_reversed_table(table), other])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "does not have valid feature names"
            np.testing.assert_array_equal(estimator.transform([table, other]), before)


def test_the_model_refuses_a_pyarrow_table_of_its_learned_columns_in_another_order():
    """A model keeps the column names of the frame it learned a modality
    from and refuses a frame of them in another order; a pyarrow table of
    those columns reordered (read from Parquet by another tool) was
    embedded by position, as other features, without a word. Its names are
    still not learned (they may repeat), but they are checked."""
    pa = pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(32, 20)), columns=[f"c{j}" for j in range(20)])
    model = small_model()
    model.fit({"visual": frame, "auditory": rng.normal(size=(32, 12))}, epochs=1, progress=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: its columns \['c19', 'c18', .* are those the "
                                                   r"model was fitted on \(\['c0', 'c1', .*\) in another order"):
        model.encode({"visual": _reversed_table(table)})
    np.testing.assert_array_equal(model.encode({"visual": table}), model.encode({"visual": frame}))
    assert small_model().encode({"visual": _reversed_table(table)}).shape == (32, 7, 16)  # nothing learned: positions


def test_pyarrow_tables_of_one_feature_space_in_another_order_are_refused_as_frames_are():
    """The metrics' ``train_x`` and ``test_x`` and ExactCCA's ``X`` in
    ``fit`` and ``transform`` pair columns by position, and refuse data
    frames of the same names in another order; pyarrow tables of them
    (whose ``columns`` are arrays, not names) were paired by position: a
    k-NN accuracy and canonical scores of other features, without a word."""
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("sklearn")
    from grapheme_multimodal.evaluation import ExactCCA
    from grapheme_multimodal.metrics import knn_accuracy

    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 2))
    x, y = z @ rng.normal(size=(2, 5)), z @ rng.normal(size=(2, 3)) + 0.1 * rng.normal(size=(60, 3))
    table = pa.table({f"x{j}": x[:, j] for j in range(5)})
    labels = np.arange(60) % 3
    with pytest.raises(gm.InvalidValueError, match=r"^test_x: its columns \['x4', 'x3', .* are those of train_x "
                                                   r"\(\['x0', 'x1', .*\) in another order"):
        knn_accuracy(table, labels, _reversed_table(table), labels)
    assert knn_accuracy(table, labels, table, labels) == knn_accuracy(x, labels, x, labels)
    for fitted_on in (table, table.to_pandas()):
        cca = ExactCCA(2).fit(fitted_on, y)
        with pytest.raises(gm.InvalidValueError, match=r"^X: its columns \['x4', 'x3', .* are those of fit's X"):
            cca.transform(_reversed_table(table))
        np.testing.assert_array_equal(cca.transform(table), cca.transform(x))
