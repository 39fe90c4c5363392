"""A hostile check of the Ray scale-out layer (s60): what a dataset made by
``embed_dataset`` does once steps of Ray Data's own follow it. Each test
says what a user saw before the fix."""

import numpy as np
import pytest

from test_fit import small_model, synthetic
from test_trust_ray_s57 import distributed, ray, ray_test  # Ray imported (or not) as the CI asks
from test_trust_ray_s58 import _cpus_freed, tensors

if distributed is not None:
    import pyarrow as pa  # Ray Data's own dependency
else:
    pa = None


@ray_test
@pytest.mark.timeout(60)  # before the fix, count() never returned
def test_steps_after_an_embedding_pool_of_every_cpu_run_once_the_pool_is_done(quiet_ray_data):
    """``embed_dataset(ds, ..., num_actors=2)`` on a cluster of 2 CPUs
    followed by a step Ray Data runs as tasks of its own (``count()``, which
    adds a projection and a count after the pool; a ``map_batches`` of a
    function) never ended: the callback that kills the pools' actors when a
    run ends kept a handle to each of them for the whole run, so the actors
    Ray Data released once the pool had embedded every row stayed alive,
    holding both CPUs, and the steps after them waited forever. Ray Data
    alone counts such a dataset. Now the handles are held weakly: the steps
    after the pool run once it is done, and every CPU is freed after."""
    x = synthetic(16)["visual"]
    ds = ray.data.from_arrow([pa.table({"v": tensors(x[i:i + 4]), "id": pa.array(range(i, i + 4))}) for i in range(0, 16, 4)])
    model = small_model()
    out = distributed.embed_dataset(ds, model, {"visual": "v"}, num_actors=2, batch_size=4)
    assert out.count() == 16
    assert _cpus_freed(), ray.available_resources()


@ray_test
@pytest.mark.timeout(60)  # before the fix, the command never ended
def test_cli_embed_on_ray_with_a_worker_per_cpu_ends_and_writes_what_embed_writes(tmp_path, capsys):
    """``grapheme-mm embed --ray --workers 2`` on a cluster of 2 CPUs (the
    local Ray the command starts on a 2-core machine; here the session's)
    never ended: the command reads the pool's output through a
    ``select_columns`` that Ray Data runs as tasks after the pool, which
    waited forever for the CPUs of the actors the pool had released (the
    same handles held as above). Now it writes the embeddings that ``embed``
    without ``--ray`` writes, bit for bit, and frees every CPU."""
    from grapheme_multimodal.cli import main

    x = synthetic(6)["visual"]
    model = small_model()
    model.save(tmp_path / "m.safetensors")
    np.save(tmp_path / "v.npy", x)
    common = ["embed", str(tmp_path / "m.safetensors"), "-m", f"visual={tmp_path / 'v.npy'}", "--batch-size", "2"]
    assert main([*common, "-o", str(tmp_path / "ray.npy"), "--ray", "--workers", "2"]) == 0
    assert main([*common, "-o", str(tmp_path / "local.npy")]) == 0
    assert np.load(tmp_path / "ray.npy").tobytes() == np.load(tmp_path / "local.npy").tobytes()
    assert _cpus_freed(), ray.available_resources()


@ray_test
def test_cli_embed_on_ray_gives_every_worker_rows_of_a_file_smaller_than_a_block(tmp_path, monkeypatch):
    """``embed --ray --workers 2`` put a file's rows in blocks of 65,536, and
    Ray Data hands a block to one actor: a file of fewer rows was one block,
    embedded by one actor while the other idled, and Ray's warning about a
    setting the command line does not have (``override_num_blocks``) came
    on stderr. Now the rows are split into a block per worker (batches of
    ``--batch-size`` at least), and the output is unchanged."""
    import warnings

    from grapheme_multimodal.cli import main

    x = synthetic(12)["visual"]
    small_model().save(tmp_path / "m.safetensors")
    np.save(tmp_path / "v.npy", x)
    common = ["embed", str(tmp_path / "m.safetensors"), "-m", f"visual={tmp_path / 'v.npy'}", "--batch-size", "2"]
    made = []

    def arrays_dataset(*args, **kwargs):
        made.append(arrays_dataset.made(*args, **kwargs))
        return made[-1]

    arrays_dataset.made = distributed._arrays_dataset
    monkeypatch.setattr(distributed, "_arrays_dataset", arrays_dataset)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert main([*common, "-o", str(tmp_path / "ray.npy"), "--ray", "--workers", "2"]) == 0
    assert [ds.num_blocks() for ds in made] == [2]
    idle = [str(w.message) for w in said if "concurrent actors" in str(w.message)]
    assert not idle, idle
    assert main([*common, "-o", str(tmp_path / "local.npy")]) == 0
    assert np.load(tmp_path / "ray.npy").tobytes() == np.load(tmp_path / "local.npy").tobytes()
