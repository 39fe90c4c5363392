"""Metamorphic checks over the public API: relations between two calls that
must hold whatever the values, where no single answer is known. Rows
permuted give their outputs permuted; a row's outputs are those of a batch
of that row alone, also across the core's row chunks (tiles of 6 rows,
tasks of at most 96); the order of a dict's modalities, float64 against
its float32 cast, and a missing view as NaN rows, as a mask or as an
absent key change nothing; the metrics agree with a plain numpy statement
of their definition on random small cases, ties included, and break exact
ties as documented. Each says what a user would otherwise have seen."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal import sklearn as gm_sklearn
from grapheme_multimodal.evaluation import binder_auc
from grapheme_multimodal.metrics import cross_view_retrieval, knn_accuracy

from conftest import unit_embeddings

DIMS = {"visual": 5, "linguistic": 7, "abstract": 3}
SLOTS = [gm.Modality.parse(m).index for m in DIMS]

CONFIGS = {
    "original": {},
    "capacity": dict(encoder_hidden=(16,), shared_head=(8,), encoder_skip=True, binder_kind="bilinear",
                     fusion_residual=2.0, embed_dim=8, hidden_dim=12, num_heads=2),
}

#: Batch sizes about the core's chunks: its GEMM tiles of 6 rows and its
#: forward tasks of at most 96 rows (rust/core/src/model.rs, FORWARD_CHUNK).
SIZES = [1, 5, 6, 7, 95, 96, 97, 193]


def _model(config: str) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=1, input_dims=DIMS, **CONFIGS[config])


def _inputs(rows: int, seed: int):
    """float32 inputs of the three modalities and a mask in which visual is
    missing from about a third of the rows."""
    rng = np.random.default_rng(seed)
    x = {m: rng.normal(size=(rows, d)).astype(np.float32) for m, d in DIMS.items()}
    mask = np.zeros((rows, 7), bool)
    mask[:, SLOTS] = True
    mask[:, SLOTS[0]] = rng.random(rows) < 0.7
    return x, mask


def _forward(model, x, mask):
    """Every batched read-out of ``model`` on ``x`` and ``mask``."""
    emb, fused = model.encode_and_fuse(x, mask)
    query = np.roll(fused, 1, axis=1)  # a query of each row's own
    out = {
        "embeddings": emb, "fused": fused, "fuse": model.fuse(emb, mask),
        "pair_strengths": model.pair_strengths(emb, mask), "attend": model.attend(query, emb, mask),
        "attention_weights": model.attention_weights(query, emb, mask, per_head=True),
        "bind": model.bind(emb[:, SLOTS[1]], emb[:, SLOTS[2]]),
    }
    if model.config.encoder_hidden:
        out["hidden_features"] = model.hidden_features(x, mask)
    return out


def _assert_same_bits(got: dict, want: dict, what: str) -> None:
    for name in want:
        assert got[name].tobytes() == want[name].tobytes(), f"{name}: {what}"


# ------------------------------------------------------------ the model's rows
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("rows", SIZES)
def test_a_rows_outputs_are_its_own_whatever_the_batch_around_it(config, rows) -> None:
    """Each row's embeddings, fused row, strengths, attention and hidden
    features are, bit for bit, those of a batch of that row alone and those
    of the rows permuted: `grapheme-mm embed --batch-size` and transform's
    chunks rely on it."""
    model = _model(config)
    x, mask = _inputs(rows, seed=rows)
    whole = _forward(model, x, mask)
    perm = np.random.default_rng(rows).permutation(rows)
    permuted = _forward(model, {m: v[perm] for m, v in x.items()}, mask[perm])
    _assert_same_bits(permuted, {k: v[perm] for k, v in whole.items()}, "rows permuted")
    for i in sorted({0, rows // 2, rows - 1}):
        alone = _forward(model, {m: v[i:i + 1] for m, v in x.items()}, mask[i:i + 1])
        _assert_same_bits(alone, {k: v[i:i + 1] for k, v in whole.items()}, f"row {i} of {rows} alone")


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_dict_order_float64_and_three_spellings_of_a_missing_view_agree(config) -> None:
    """The modalities in another dict order, float64 inputs beside their
    float32 cast, and rows without visual given as NaN under the mask: the
    same bits. A view missing from every row as an absent key or as a
    column of False in the mask: the same bits."""
    model = _model(config)
    x, mask = _inputs(97, seed=3)
    want = _forward(model, x, mask)
    _assert_same_bits(_forward(model, dict(reversed(list(x.items()))), mask), want, "dict order")
    _assert_same_bits(_forward(model, {m: v.astype(np.float64) for m, v in x.items()}, mask), want, "float64")
    nan = dict(x, visual=np.where(mask[:, SLOTS[0], None], x["visual"], np.nan).astype(np.float32))
    _assert_same_bits(_forward(model, nan, mask), want, "NaN under the mask")

    without = {m: v for m, v in x.items() if m != "visual"}
    masked = mask.copy()
    masked[:, SLOTS[0]] = False
    want = _forward(model, without, masked)
    _assert_same_bits(_forward(model, x, masked), want, "absent vs masked out")
    _assert_same_bits(_forward(model, dict(x, visual=np.full((97, 5), np.nan)), masked), want, "NaN, masked out")


# ------------------------------------------------------------------ training
def _fit(data, mask=None, **kw) -> dict:
    model = gm.LearnableMultiModal(seed=3, input_dims={"visual": 5, "abstract": 4}, embed_dim=8, hidden_dim=8,
                                   num_heads=2, binder_kind="bilinear", encoder_hidden=(6,))
    model.fit(data, mask=mask, epochs=2, batch_size=16, seed=1, progress=False, modality_dropout=0.2, **kw)
    return {k: v.tobytes() for k, v in model.state_dict().items()}


def test_fit_does_not_depend_on_dict_order_dtype_or_how_a_view_is_missing() -> None:
    """The same seed and data train the same weights: twice, with the
    modalities in another order, in float32, and with a view that is never
    there absent, masked out, or NaN and masked out."""
    rng = np.random.default_rng(0)
    x = {"visual": rng.normal(size=(70, 5)), "linguistic": rng.normal(size=(70, 18)),
         "abstract": rng.normal(size=(70, 4))}
    want = _fit(x)
    assert _fit(x) == want
    assert _fit(dict(reversed(list(x.items())))) == want
    assert _fit({m: v.astype(np.float32) for m, v in x.items()}) == want

    mask = np.zeros((70, 7), bool)
    mask[:, [0, 2]] = True
    without = _fit({m: v for m, v in x.items() if m != "abstract"})
    assert _fit(x, mask) == without
    assert _fit(dict(x, abstract=np.full((70, 4), np.nan)), mask) == without


# -------------------------------------------------------------- the estimator
@pytest.fixture(scope="module")
def views():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(90, 3))
    return [z @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(90, 6)), z @ rng.normal(size=(3, 4)) + 5]


def _embedder(**kw) -> gm_sklearn.MultimodalEmbedder:
    return gm_sklearn.MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=3, batch_size=32,
                                         encoder_hidden=(8,), shared_head=(8,), random_state=0, **kw)


@pytest.mark.parametrize("output", ["fused", "hidden"])
def test_transform_is_row_by_row_and_the_training_datas_is_fit_transforms(views, output, monkeypatch) -> None:
    """fit_transform equals fit then transform and a second fit; transform
    of rows permuted is its rows permuted, in chunks of 7 rows the one call's
    bits, and a missing view as NaN rows or masked rows what the model gives
    for it masked out."""
    est = _embedder(output=output)
    first = est.fit_transform(views)
    assert first.tobytes() == est.transform(views).tobytes()
    assert _embedder(output=output).fit(views).transform(views).tobytes() == first.tobytes()
    assert est.transform([v.astype(np.float32) for v in views]).tobytes() == first.astype(np.float32).tobytes()

    perm = np.random.default_rng(1).permutation(90)
    assert est.transform([v[perm] for v in views]).tobytes() == first[perm].tobytes()
    monkeypatch.setattr(gm_sklearn, "_TRANSFORM_ROWS", 7)
    assert est.transform(views).tobytes() == first.tobytes()

    nan = [views[0].copy(), views[1]]
    nan[0][[3, 7, 89]] = np.nan
    masked = [np.ma.masked_array(views[0], mask=np.isnan(nan[0])), views[1]]
    got = est.transform(nan)
    assert got.tobytes() == est.transform(masked).tobytes()
    if output == "fused":
        mask = np.zeros((90, 7), bool)
        mask[:, :2] = True
        mask[[3, 7, 89], 0] = False
        fused = est.model_.encode_and_fuse({"visual": views[0], "auditory": views[1]}, mask)[1]
        assert got.tobytes() == fused.astype(np.float64).tobytes()


# ------------------------------------------------------------------- metrics
def _nearest(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Each integer query row's nearest gallery row by squared Euclidean
    distance, exact in int64, ties to the lowest index (argmin's first)."""
    d = ((query[:, None, :] - gallery[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 4), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_euclidean_retrieval_is_its_definition_ties_included(n, d, chunk_size, seed) -> None:
    """On small integers, where every distance is exact and ties abound, P@1
    and R@1 are those of a plain argmin over the exact distances (lowest
    index on a tie), on any chunk size, with classes relabelled too."""
    rng = np.random.default_rng(seed)
    query, gallery = rng.integers(-2, 3, size=(2, n, d))
    labels = rng.integers(0, 3, size=n)
    nn = _nearest(query, gallery)
    want = {"class_precision_at_1": float(np.mean(labels[nn] == labels)),
            "instance_recall_at_1": float(np.mean(nn == np.arange(n)))}
    assert cross_view_retrieval(query, gallery, labels, metric="euclidean", chunk_size=chunk_size) == want
    renamed = np.array(["c", "a", "b"])[labels]
    assert cross_view_retrieval(query.astype(np.float32), gallery, renamed, metric="euclidean") == want


#: (n, d, first copy, second copy): duplicated gallery rows at the edges of
#: BLAS tiles (the last columns, the last rows of a block), where OpenBLAS
#: rounded the two copies' scores apart on the machine these were found on.
DUPLICATES = [(130, 128, 127, 129), (130, 300, 127, 129), (83, 64, 0, 82), (83, 300, 0, 82),
              (130, 64, 0, 129), (130, 300, 0, 129), (40, 16, 1, 20), (24, 300, 21, 23)]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("n, d, a, b", DUPLICATES)
@pytest.mark.parametrize("chunk_size", [5, 2048])
def test_a_duplicated_gallery_row_is_found_at_its_first_copy_from_every_query_row(metric, n, d, a, b, chunk_size) -> None:
    """"Exact distance ties go to the lowest gallery index": every query
    equal to gallery rows a and b (duplicates, as 6 UCI digits are) finds a.
    The matrix product rounded the two copies' scores apart by where the
    query row lay in the block and the gallery row in the gallery: on the
    machine this was found on up to 71 of 130 such queries found b, which
    ones depending on chunk_size too.
    Labels: b alone in class 1, so each query that finds b scores a miss,
    and precision is (n - 1) / n only when every query row finds a."""
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(n, d))
    gallery[b] = gallery[a]
    c = next(i for i in range(n) if i not in (a, b))
    query = np.repeat(gallery[a:a + 1], n, axis=0)
    query[b] = gallery[c]  # row b's own query is elsewhere: it misses whichever copy the others find
    labels = np.zeros(n, int)
    labels[b] = 1
    got = cross_view_retrieval(query, gallery, labels, metric=metric, chunk_size=chunk_size)
    assert got["class_precision_at_1"] == (n - 1) / n


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 60), st.sampled_from([3, 17, 64, 129]), st.integers(0, 2**32 - 1))
def test_retrieval_of_rows_in_any_order_or_chunks_is_the_same(n, d, seed) -> None:
    """Query, gallery and labels permuted together, and any chunk size, give
    the same P@1 and R@1 when the gallery holds duplicated rows (whose tie
    the lowest index decides: the permutation keeps the copies' order)."""
    rng = np.random.default_rng(seed)
    gallery = rng.normal(size=(n, d))
    copies = n // 3
    gallery[n - copies:] = gallery[rng.integers(0, n - copies, size=copies)]  # duplicates of earlier rows
    query = gallery + 0.3 * rng.normal(size=gallery.shape)
    labels = rng.integers(0, 4, size=n)
    perm = rng.permutation(n)  # old row i goes to perm[i]
    groups: dict = {}
    for i in range(n):
        groups.setdefault(gallery[i].tobytes(), []).append(i)
    for members in groups.values():  # each group's copies keep their order, so a tie's lowest index is the same copy
        perm[members] = np.sort(perm[members])
    inverse = np.argsort(perm)
    for metric in ("cosine", "euclidean"):
        want = cross_view_retrieval(query, gallery, labels, metric=metric)
        assert cross_view_retrieval(query[inverse], gallery[inverse], labels[inverse], metric=metric) == want
        assert cross_view_retrieval(query, gallery, labels, metric=metric, chunk_size=int(rng.integers(1, n + 1))) == want


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 16), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_knn_accuracy_is_a_plain_majority_vote(n, m, d, seed) -> None:
    """Against a numpy k-NN: the k nearest by distance (cases with a tie at
    the k-th distance skipped: scikit-learn's order among them is its own),
    a majority vote with ties to the smallest label; the same with the
    classes renamed in the same order as strings, and with every training
    row given twice and ``2 k`` neighbours."""
    rng = np.random.default_rng(seed)
    train, test = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    train_y, test_y = rng.integers(0, 3, size=n), rng.integers(0, 3, size=m)
    k = int(rng.integers(1, n + 1))
    dist = np.sqrt(((test[:, None] - train[None]) ** 2).sum(-1))
    ranked = np.sort(dist, axis=1)
    if k < n and np.any(ranked[:, k] - ranked[:, k - 1] < 1e-9):
        return
    votes = [np.bincount(train_y[np.argsort(row)[:k]], minlength=3) for row in dist]
    want = float(np.mean(np.argmax(votes, axis=1) == test_y))
    assert knn_accuracy(train, train_y, test, test_y, k=k) == want
    names = np.array(["a", "b", "c"])
    assert knn_accuracy(train, names[train_y], test, names[test_y], k=k) == want
    # every training row twice and twice the neighbours: each vote counted twice, the same winners
    assert knn_accuracy(np.vstack([train, train]), np.r_[train_y, train_y], test, test_y, k=2 * k) == want


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=15), st.lists(st.integers(-3, 3), min_size=1, max_size=15),
       st.randoms(use_true_random=False))
def test_roc_auc_is_roc_auc_score_and_ignores_order_copies_and_monotone_maps(pos, neg, random) -> None:
    """On small integers (ties everywhere): scikit-learn's roc_auc_score; the
    same bits for the scores shuffled, every score given twice, and scores
    mapped by an increasing function (x -> 4x - 1, exact in float64)."""
    from sklearn.metrics import roc_auc_score

    from grapheme_multimodal.metrics import roc_auc

    pos, neg = np.array(pos, float), np.array(neg, float)
    got = roc_auc(pos, neg)
    assert got == pytest.approx(roc_auc_score(np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[pos, neg]), abs=1e-12)
    shuffled = pos.tolist()
    random.shuffle(shuffled)
    assert roc_auc(np.array(shuffled), neg[::-1]) == got
    assert roc_auc(np.r_[pos, pos], np.r_[neg, neg]) == got
    assert roc_auc(4 * pos - 1, 4 * neg - 1) == got


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(2, 4), st.integers(0, 2**32 - 1), st.integers(0, 1000))
def test_binder_auc_is_roc_auc_score_of_its_own_and_other_events_pairs(n, views, data_seed, seed) -> None:
    """binder_auc against scikit-learn's roc_auc_score of the strengths it
    scored: per ordered pair of views the rows with their own event
    (positives) and with another event's (negatives, never their own); with
    two rows, whose other event is the other row, the same AUC from any
    seed and any order of the views."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(data_seed)
    emb = {f"v{j}": np.round(rng.normal(size=(n, 3)), 1) for j in range(views)}
    calls = []

    def bind(a, b):
        strengths = (a * b).sum(axis=1)
        calls.append((a, b, strengths))
        return strengths

    got = binder_auc(bind, emb, seed=seed)
    pairs = [(i, j) for i in emb for j in emb if i != j]
    assert len(calls) == 2 * len(pairs)
    for (i, j), (own, other) in zip(pairs, zip(calls[::2], calls[1::2])):
        assert own[0].tobytes() == emb[i].tobytes() and own[1].tobytes() == emb[j].tobytes()
        assert other[0].tobytes() == emb[i].tobytes()
        for r in range(n):  # row r's negative is another row of view j
            assert any(other[1][r].tobytes() == emb[j][s].tobytes() for s in range(n) if s != r)
    scores = np.concatenate([c[2] for c in calls[::2]] + [c[2] for c in calls[1::2]])
    truth = np.r_[np.ones(n * len(pairs)), np.zeros(n * len(pairs))]
    assert got == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
    if n == 2:
        assert binder_auc(lambda a, b: (a * b).sum(axis=1), dict(reversed(list(emb.items()))), seed=seed + 1) == got


# ------------------------------------------------------------ the experience buffer
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 25), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_a_sample_holds_the_experiences_its_indices_name_weighed_as_documented(capacity, records, prioritized, replace,
                                                                                seed) -> None:
    """Whatever the ring has wrapped: the buffer iterates oldest first, a
    sample's rows are the experiences at its indices, and a prioritised
    sample's weights are ``(N P(i))^-beta / max_j (N P(j))^-beta`` with
    ``P(i) = p_i^alpha / sum_j p_j^alpha``, computed here in plain numpy."""
    from grapheme_multimodal.buffer import Experience, ExperienceBuffer

    rng = np.random.default_rng(seed)
    buf = ExperienceBuffer(capacity, embed_dim=3, seed=seed % 1000)
    for i in range(records):
        mask = np.zeros(7, bool)
        mask[[0, 2]] = True
        emb = np.zeros((7, 3), np.float32)
        emb[mask, :2] = unit_embeddings([i])[0, 0]  # a unit vector of its own, as encoders give
        buf.append(Experience(embeddings=emb, mask=mask, fused=np.full(3, i, np.float32),
                              pair_strengths=np.zeros((7, 7), np.float32), reward=float(rng.random()), event_id=i))
    held = len(buf)
    assert [x.event_id for x in buf] == list(range(records - held, records))
    priorities = rng.random(held) + 0.1
    buf.update_priorities(np.arange(held), priorities)
    size = int(rng.integers(1, held + 1))
    alpha, beta = 0.6, 0.4
    batch = buf.sample(size, prioritized=prioritized, alpha=alpha, beta=beta, replace=replace)
    want = np.array([buf[int(i)].event_id for i in batch.indices])
    np.testing.assert_array_equal(batch.event_ids, want)
    np.testing.assert_array_equal(batch.fused, np.repeat(want[:, None], 3, axis=1).astype(np.float32))
    if prioritized:
        p = priorities**alpha / np.sum(priorities**alpha)
        weights = (held * p) ** -beta / np.max((held * p) ** -beta)
        np.testing.assert_allclose(batch.weights, weights[batch.indices], rtol=1e-5)
    else:
        assert (batch.weights == 1).all()


# ------------------------------------------------------------ figures against their anchors
def _scores(pairs, value: float, two: float) -> "evaluation.ModelScores":
    from grapheme_multimodal import evaluation

    return evaluation.ModelScores(retrieval={p: {m: value for m in evaluation.RETRIEVAL_METRICS} for p in pairs},
                                  fused_knn=two, fused_probe=two, two_view_knn={"a+b": two}, binder_auc=None)


def test_a_figure_exactly_at_its_bound_counts_as_reaching_it() -> None:
    """compare's counts and the demo's notes: three runs of 70/400 are at
    least a raw anchor of 70/400, though their mean rounds below it, and
    within 0.02 of 78/400, though 78/400 - 0.02 rounds above them. Both
    were counted as falling short ("within 0.02 of exact CCA on 29 of 30
    pairs" where all 30 were), as are 26 of the 393 pairs of k/400 and
    (k + 8)/400 in the demo's single run."""
    from grapheme_multimodal import demo, evaluation

    pairs = [evaluation.pair_key(q, g) for q, g in evaluation.ordered_pairs(["a", "b"])]
    assert np.mean([70 / 400] * 3) < min(70 / 400, 78 / 400 - 0.02) and 70 / 400 < 78 / 400 - 0.02  # the rounding met
    anchors = evaluation.Anchors(cca={p: {m: 78 / 400 for m in evaluation.RETRIEVAL_METRICS} for p in pairs},
                                 raw_knn=0.5, raw_probe=0.5, raw_two_view_knn={"a+b": 70 / 400})
    summary = evaluation.compare([_scores(pairs, 70 / 400, 70 / 400)] * 3, anchors)
    assert summary["pairs_within_tolerance_of_cca"] == {m: 2 for m in evaluation.RETRIEVAL_METRICS}
    assert summary["two_view_pairs_at_least_raw"] == 1
    below = evaluation.compare([_scores(pairs, 69 / 400, 69 / 400)] * 3, anchors)  # one row short: not reached
    assert below["pairs_within_tolerance_of_cca"] == {m: 0 for m in evaluation.RETRIEVAL_METRICS}
    assert below["two_view_pairs_at_least_raw"] == 0

    # the demo's own counts, on its views and pairs
    views = list(demo.VIEW_MODALITIES)
    pairs = [evaluation.pair_key(q, g) for q, g in evaluation.ordered_pairs(views)]
    two = {evaluation.two_view_key(a, b): 70 / 400 for a, b in evaluation.unordered_pairs(views)}
    ours = evaluation.ModelScores(retrieval={p: {m: 70 / 400 for m in evaluation.RETRIEVAL_METRICS} for p in pairs},
                                  fused_knn=0.9, fused_probe=0.9, two_view_knn=two, binder_auc=0.9)
    anchors = evaluation.Anchors(cca={p: {m: 78 / 400 for m in evaluation.RETRIEVAL_METRICS} for p in pairs},
                                 raw_knn=0.9, raw_probe=0.9, raw_two_view_knn=dict(two))
    notes = demo.table_rows(ours, anchors)[1]
    assert notes[0].endswith("class precision@1 30 of 30, instance recall@1 30 of 30") and notes[1].endswith("15 of 15")
