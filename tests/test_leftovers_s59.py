"""Defects the s58 audit noticed and left (s59): each test says what a user
saw before the fix and what they see now."""

import dataclasses
import decimal
import errno
import json
import os
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import datasets, evaluation, uci
from grapheme_multimodal.demo import DemoResult
from grapheme_multimodal.exceptions import InvalidValueError

from test_trust_ray_s57 import distributed, ray, ray_test  # Ray imported (or not) as the CI asks


# --- uci: the recipe's helpers and the settings' weights ---------------------


@pytest.mark.parametrize("call, arg", [
    (lambda: uci.recipe_head("64"), "embed_dim"),
    (lambda: uci.recipe_head(0), "embed_dim"),
    (lambda: uci.recipe_head(2.5), "embed_dim"),
    (lambda: uci.recipe_skip("abc", (128, 64)), "encoder_hidden"),
    (lambda: uci.recipe_skip((), None), "shared_head"),
    (lambda: uci.recipe_skip((64,), (128, -1)), "shared_head[1]"),
    (lambda: uci.recipe_hidden_dropout(None), "encoder_hidden"),
    (lambda: uci.recipe_hidden_dropout((0,)), "encoder_hidden[0]"),
], ids=["head-str", "head-0", "head-float", "skip-str", "skip-empty-hidden-None-head", "skip-negative",
        "dropout-None", "dropout-0-width"])
def test_the_recipe_helpers_refuse_what_the_config_would_naming_the_argument(call, arg) -> None:
    """Before: ``recipe_head("64")`` returned ``(128, "64")``, ``recipe_skip((), None)``
    ``False`` and ``recipe_hidden_dropout(None)`` 0.3, refused only later by the
    model's config (or never, where the answer was used alone). Now the call
    refuses it, naming the argument as the config does."""
    with pytest.raises((InvalidValueError, TypeError)) as err:
        call()
    assert str(err.value).startswith(f"{arg}: "), str(err.value)


def test_the_recipe_helpers_still_answer_for_what_the_config_takes() -> None:
    """What the config takes (numpy ints, one int as one layer, no layers)
    is answered as before."""
    assert uci.recipe_head(np.int64(32)) == (128, 32) and type(uci.recipe_head(np.int64(32))[1]) is int
    assert uci.recipe_skip((), ()) is False and uci.recipe_skip(64, (128, 32)) is True
    assert uci.recipe_skip([256], np.array([128, 64])) is True
    assert uci.recipe_hidden_dropout(()) == 0.0 and uci.recipe_hidden_dropout((256,)) == uci.RECIPE_HIDDEN_DROPOUT


@pytest.mark.parametrize("flags, said", [
    (["--embed-dim", str(2**40)], "--embed-dim: got 1099511627776; expected at most "),
    (["--encoder-hidden", str(2**40)], "--encoder-hidden[0]: got 1099511627776; expected at most "),
    (["--shared-head", f"{2**40},8"], "--shared-head[0]: got 1099511627776; expected at most "),
], ids=["embed-dim", "encoder-hidden", "shared-head"])
def test_cli_widths_the_recipe_helpers_refuse_are_named_by_their_flags(tmp_path, capsys, flags, said) -> None:
    """The recipe's helpers now check the widths they are given: the command
    line's refusals still name its flags, not the helpers' arguments."""
    from conftest import cli_train_args
    from grapheme_multimodal.cli import main
    from test_fit import synthetic

    assert main([*cli_train_args(tmp_path, synthetic(40), tmp_path / "m.st"), *flags]) == 2
    assert _refused_line(capsys).startswith(f"grapheme-mm: error: {said}")


def test_settings_weights_given_as_0d_arrays_or_decimals_are_kept_as_floats() -> None:
    """Before: ``TrainingSettings(weights={"binding": np.array(2.0)})`` kept the
    array (settings that did not hash, compared unequal to the same weights
    as floats) and a ``Decimal`` the Decimal (``json.dumps`` failed). Now
    both are plain floats."""
    given = uci.TrainingSettings(weights={"contrastive": np.array(1.0), "binding": decimal.Decimal("2"),
                                          "cross_modal": np.float32(0.5)})
    floats = uci.TrainingSettings(weights={"contrastive": 1.0, "binding": 2.0, "cross_modal": 0.5})
    assert all(type(w) is float for w in given.weights.values())
    assert given == floats and hash(given) == hash(floats)
    dumped = json.loads(json.dumps(dataclasses.asdict(given)))
    assert dumped["weights"] == {"contrastive": 1.0, "binding": 2.0, "cross_modal": 0.5}


def test_settings_weights_named_by_numpy_strings_are_kept_by_plain_names() -> None:
    """Before: names read from an array stayed numpy's (``{np.str_('contrastive'): 1.0}``
    in the settings' repr). Now plain ``str``."""
    settings = uci.TrainingSettings(weights={np.str_("contrastive"): 1.0})
    assert [type(k) for k in settings.weights] == [str] and "np.str_" not in repr(settings)


@pytest.mark.parametrize("weight", [decimal.Decimal("NaN"), np.array(np.inf), decimal.Decimal("-1")])
def test_settings_weights_that_are_no_finite_number_at_least_0_are_still_refused(weight) -> None:
    with pytest.raises(InvalidValueError, match=r"weights\['binding'\]: expected a finite number >= 0"):
        uci.TrainingSettings(weights={"contrastive": 1.0, "binding": weight})


# --- demo: the table of a result ----------------------------------------------


def test_the_table_of_an_empty_demo_result_is_its_header() -> None:
    """Before: ``DemoResult().table()`` raised max()'s bare "max() arg is an
    empty sequence". Now the header alone (and the notes, if any)."""
    lines = DemoResult(notes=["a note"]).table().splitlines()
    assert lines[0].split() == ["measure", "(held-out", "400", "digits)", "ours", "anchor", "anchor", "is"]
    assert set(lines[1]) == {"-"} and lines[2:] == ["", "a note"]


def test_a_figure_the_model_lacks_is_shown_as_a_dash() -> None:
    """Before: a row whose own figure is ``None`` (the binder ROC-AUC of a
    model without a binder, as ``table_rows`` makes it) failed with
    "unsupported format string passed to NoneType.__format__". Now ``-``,
    as a missing anchor is shown."""
    table = DemoResult(rows=[("binder ROC-AUC", None, 0.5, "chance"), ("5-NN", 0.25, None, "none")]).table()
    assert table.splitlines()[2].split() == ["binder", "ROC-AUC", "-", "0.500", "chance"]
    assert table.splitlines()[3].split() == ["5-NN", "0.250", "-", "none"]


# --- evaluation: test classes training never saw -----------------------------


class _FirstColumns:
    """Embeds every view (and the fused views) as its first two columns."""

    def embed_views(self, views):
        return {v: np.asarray(x)[:, :2] + 1.0 for v, x in views.items()}

    def embed_fused(self, views):
        return np.asarray(next(iter(views.values())))[:, :2] + 1.0


def _split(classes, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.asarray(classes), 6)
    views = {v: rng.normal(size=(labels.size, 3)) + labels[:, None] for v in ("a", "b")}
    return datasets.MultipleFeatures(views=views, labels=labels)


def test_evaluate_model_warns_of_test_classes_absent_from_training() -> None:
    """Before: test rows of classes the training split lacks counted as
    wrong in every k-NN and probe accuracy (0.0 where no test class was
    trained), without a word. Now a UserWarning at the caller's line names
    those classes and rows."""
    train, test = _split(range(3), 0), _split(range(5), 1)
    with pytest.warns(UserWarning, match=r"test\.labels: 12 test rows of 30 are of 2 classes absent from train\.labels "
                                         r"\(3, 4\)") as caught:
        evaluation.evaluate_model(_FirstColumns(), train, test, two_views=False)
    assert [w.filename for w in caught] == [__file__]


def test_evaluate_model_of_a_split_holding_every_class_does_not_warn() -> None:
    train, test = _split(range(3), 0), _split([2, 0], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluation.evaluate_model(_FirstColumns(), train, test, two_views=False)


def _scores_of_no_pairs() -> evaluation.ModelScores:
    return evaluation.ModelScores(retrieval={}, fused_knn=0.5, fused_probe=0.5, two_view_knn={}, binder_auc=None)


def test_the_mean_retrieval_of_scores_without_view_pairs_is_refused_not_nan() -> None:
    """Before: ``ModelScores(retrieval={}, ...).mean_retrieval(...)`` returned NaN
    with numpy's "Mean of empty slice". Now an error naming ``retrieval``."""
    with pytest.raises(InvalidValueError, match=r"^retrieval: holds no view pair, so class_precision_at_1 has no mean"):
        _scores_of_no_pairs().mean_retrieval("class_precision_at_1")


def test_compare_refuses_runs_without_view_pairs_instead_of_nan_figures() -> None:
    """Before: ``compare`` of runs scoring no view pair returned NaN means
    (numpy's "Mean of empty slice") and "0 of 0" pairs within tolerance.
    Now an error naming ``runs[0].retrieval``."""
    anchors = evaluation.Anchors(cca={}, raw_knn=0.5, raw_probe=0.5, raw_two_view_knn={})
    with pytest.raises(InvalidValueError, match=r"^runs\[0\]\.retrieval: holds no view pair") as err:
        evaluation.compare([_scores_of_no_pairs()], anchors)
    assert err.value.arg == "runs"


def test_compare_names_a_multiview_anchor_without_the_runs_view_pairs() -> None:
    """Before: anchors whose ``multiview`` method lacked a view pair of the
    runs (anchors of other views, or hand-made) failed ``compare`` with a
    bare ``KeyError: 'a->b'``. Now an error naming ``anchors.multiview['MCCA']``
    and the pairs it lacks, as for ``anchors.cca``."""
    figures = {"class_precision_at_1": 0.5, "instance_recall_at_1": 0.5}
    run = evaluation.ModelScores(retrieval={"a->b": figures}, fused_knn=0.5, fused_probe=0.5, two_view_knn={},
                                 binder_auc=None)
    anchors = evaluation.Anchors(cca={"a->b": figures}, raw_knn=0.5, raw_probe=0.5, raw_two_view_knn={},
                                 multiview={"MCCA": {"b->a": figures}})
    with pytest.raises(InvalidValueError, match=r"^anchors\.multiview\['MCCA'\]: no figures for the runs' view pairs "
                                                r"\['a->b'\]") as err:
        evaluation.compare([run], anchors)
    assert err.value.arg == "anchors"


# --- io: a save into a folder the user may not write --------------------------


def test_a_save_into_a_folder_the_user_may_not_write_says_path_and_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    """Before: the OS's bare ``[Errno 13] Permission denied: '.../m.st'``,
    without the ``path:`` the package's other file errors begin with. Now
    ``path: '.../m.st' cannot be saved: no file can be created in its
    folder ...``, still a PermissionError with its errno; the file saved
    before is kept. (os.open refused: the tests may run as root, whom a
    read-only folder or file does not stop.)"""
    target = tmp_path / "m.st"
    model = gm.LearnableMultiModal(seed=0)
    model.save(target)
    saved = target.read_bytes()
    real_open = os.open

    def refusing_new_files(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing_new_files)
    with pytest.raises(PermissionError) as err:
        model.save(target)
    monkeypatch.undo()
    assert str(err.value) == (
        f"path: {str(target)!r} cannot be saved: no file can be created in its folder {str(tmp_path)!r} "
        "(Permission denied); expected a folder this user may write")
    assert err.value.errno == errno.EACCES
    assert target.read_bytes() == saved and os.listdir(tmp_path) == ["m.st"]


def _refusing_to_open(monkeypatch, suffix: str, flag: int) -> None:
    """os.open raises the OS's PermissionError for names ending in ``suffix``
    opened with ``flag`` set (os.O_CREAT: a folder that takes no new file),
    or without it (0: a file that may not be read)."""
    real_open = os.open

    def refusing(path, flags, *args):
        if os.fspath(path).endswith(suffix) and bool(flags & os.O_CREAT) == bool(flag):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing)


@pytest.mark.parametrize("load", [gm.LearnableMultiModal.load, gm.load_models], ids=["load", "load_models"])
def test_a_checkpoint_the_user_may_not_read_says_path(tmp_path, monkeypatch, load) -> None:
    """Before: loading a file the user may not read raised the OS's bare
    ``[Errno 13] Permission denied: '.../m.st'``. Now ``path: '.../m.st'
    cannot be read (Permission denied); ...``, a PermissionError with its
    errno, as the package's other file errors."""
    target = tmp_path / "m.st"
    gm.LearnableMultiModal(seed=0).save(target)
    _refusing_to_open(monkeypatch, "m.st", 0)
    with pytest.raises(PermissionError) as err:
        load(target)
    assert str(err.value) == (f"path: {str(target)!r} cannot be read (Permission denied); expected a file this "
                              "user may read")
    assert err.value.errno == errno.EACCES


def test_cli_names_the_argument_of_a_file_it_may_not_read_or_replace(tmp_path, monkeypatch, capsys) -> None:
    """Before: ``grapheme-mm info m.st`` of a file it may not read said
    "m.st: Permission denied", and ``train -o m.st --overwrite`` over a
    read-only file "[Errno 13] --output: 'm.st' is read-only; ...", the
    errno's number before the flag. Now each names its argument first:
    "checkpoint: ... cannot be read", "--output: ... is read-only"."""
    from conftest import cli_train_args
    from grapheme_multimodal.cli import main
    from test_fit import synthetic

    target = tmp_path / "m.st"
    gm.LearnableMultiModal(seed=0).save(target)
    os.chmod(target, 0o444)  # read-only to everyone (root too: the save checks the mode bits)
    assert main(cli_train_args(tmp_path, synthetic(40), target)) == 2
    assert _refused_line(capsys).startswith(f"grapheme-mm: error: --output: {str(target)!r} is read-only; ")
    _refusing_to_open(monkeypatch, "m.st", 0)
    assert main(["info", str(target)]) == 2
    assert _refused_line(capsys) == (f"grapheme-mm: error: checkpoint: {str(target)!r} cannot be read (Permission "
                                     "denied); expected a file this user may read")


# --- Ray: the library's own ray.init, and --ray-address when connected --------


@pytest.mark.skipif(distributed is None, reason='needs Ray: pip install -e ".[test]"')
def test_the_librarys_own_ray_init_keeps_ray_2_51s_accelerator_tip_from_the_user(monkeypatch) -> None:
    """Before: Ray 2.51's FutureWarning at every first ``ray.init`` ("Tip: In
    future versions of Ray, Ray will no longer override accelerator visible
    devices env var ...") reached the user of a distributed fit as an
    ordinary warning, a tip about GPUs the library never asks for (the
    command line filtered it; the library did not). Now the library's own
    ``ray.init`` filters exactly that warning; every other passes. (Ray
    stands in for itself here: the session's is running already.)"""
    started = []

    def init(*args, **kwargs):
        warnings.warn("Tip: In future versions of Ray, Ray will no longer override accelerator visible devices env "
                      "var if num_gpus=0 or num_gpus=None (default).", FutureWarning)
        warnings.warn("another FutureWarning", FutureWarning)
        warnings.warn("a warning of Ray's", UserWarning)
        started.append(True)

    monkeypatch.setattr(distributed.ray, "is_initialized", lambda: bool(started))
    monkeypatch.setattr(distributed.ray, "init", init)
    monkeypatch.setattr(distributed, "_check_ray_address", lambda address, arg: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distributed._ensure_ray()
    assert started == [True]
    assert [(w.category, str(w.message)) for w in caught] == [
        (FutureWarning, "another FutureWarning"), (UserWarning, "a warning of Ray's")]


def _refused_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@ray_test
def test_cli_in_a_process_connected_to_ray_refuses_a_ray_address_of_another_cluster(tmp_path, capsys) -> None:
    """Before: ``grapheme_multimodal.cli.main(["train", ..., "--ray-address",
    "10.0.0.5:6379"])`` in a program already connected to Ray trained on the
    cluster it was connected to, the address ignored without a word. Now
    the command refuses it (exit 2, before any work), naming --ray-address,
    the address given and the cluster the process is connected to; Ray is
    left connected as it was."""
    from conftest import cli_train_args
    from grapheme_multimodal.cli import main
    from test_fit import synthetic

    gcs = ray.get_runtime_context().gcs_address
    port = int(gcs.rpartition(":")[2])
    checkpoint = tmp_path / "m.safetensors"
    args = [*cli_train_args(tmp_path, synthetic(40), checkpoint), "--workers", "1"]
    for address in (f"127.0.0.1:{port + 1 if port < 65535 else port - 1}", f"ray://127.0.0.1:{port}"):
        assert main([*args, "--ray-address", address]) == 2
        line = _refused_line(capsys)
        assert line.startswith(f"grapheme-mm: error: --ray-address: got {address!r}, but this process is already "
                               f"connected to the local Ray cluster it started (ray.init() without an address; its "
                               f"GCS at {gcs})"), line
        assert ray.is_initialized() and not checkpoint.exists()


@ray_test
def test_cli_ray_cluster_proceeds_on_the_connected_cluster_when_the_address_names_it() -> None:
    """The address of the cluster the process is connected to (by its GCS
    address, by ``localhost``, or ``local`` for one it started) is that
    cluster: the command goes on there, and leaves Ray connected."""
    from grapheme_multimodal.cli import _ray_cluster

    gcs = ray.get_runtime_context().gcs_address
    for address in (gcs, "localhost:" + gcs.rpartition(":")[2], "local", None):
        with _ray_cluster(address):
            assert ray.is_initialized()
        assert ray.is_initialized()


@ray_test
def test_cli_ray_cluster_reads_auto_as_ray_does_when_connected(monkeypatch) -> None:
    """``auto`` names the cluster ``RAY_ADDRESS`` names (as ``ray.init("auto")``
    reads it): the connected one goes on, another is refused naming both."""
    from grapheme_multimodal.cli import _ray_cluster

    gcs = ray.get_runtime_context().gcs_address
    monkeypatch.setenv("RAY_ADDRESS", gcs)
    with _ray_cluster("auto"):
        assert ray.is_initialized()
    port = int(gcs.rpartition(":")[2])
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port + 1 if port < 65535 else port - 1}")
    with pytest.raises(InvalidValueError, match=rf"^--ray-address: got 'auto', but this process is already connected to "
                                                rf"the local Ray cluster it started \(.*{gcs}\)") as err:
        with _ray_cluster("auto"):
            pytest.fail("ran on the connected cluster")
    assert err.value.arg == "--ray-address" and ray.is_initialized()
