//! fused_contrastive's draws and neighbour sets (its gradients are checked
//! with the other objectives' in gradients.rs).

use grapheme_multimodal::objectives::fused_contrastive::{draw_views, given_positives, nearest_positives, NeighborSpace};
use grapheme_multimodal::objectives::{objective_rng, Objective, ObjectiveWeights};
use grapheme_multimodal::{Config, EmbeddingSource, EncoderInput, LearnableMultiModal, TrainBatch, NUM_MODALITIES};
use ndarray::{Array2, Array3};

#[test]
fn views_are_non_empty_subsets_of_the_present_modalities_kept_half_the_time() {
    // Row r has modalities present by the bits of r (row 0: none).
    let rows = 2000;
    let mask = Array2::from_shape_fn((rows, NUM_MODALITIES), |(r, m)| (r % 128) >> m & 1 == 1);
    let mut rng = objective_rng(5, 0, Objective::FusedContrastive);
    let (used, views) = draw_views(mask.view(), &mut rng);
    let expected: Vec<usize> = (0..rows).filter(|r| r % 128 != 0).collect();
    assert_eq!(used, expected, "rows with no modality present are skipped");
    // Kept per view of a row with p present: p/2 on average, plus one when
    // all p were dropped (probability 2^-p).
    let (mut kept, mut offered, mut expected_kept) = (0usize, 0usize, 0.0f64);
    for view in &views {
        assert_eq!(view.dim(), (used.len(), NUM_MODALITIES));
        for (k, &r) in used.iter().enumerate() {
            let present: Vec<usize> = (0..NUM_MODALITIES).filter(|&m| mask[[r, m]]).collect();
            let chosen: Vec<usize> = (0..NUM_MODALITIES).filter(|&m| view[[k, m]]).collect();
            assert!(!chosen.is_empty(), "row {r}: an empty view");
            assert!(chosen.iter().all(|m| present.contains(m)), "row {r}: {chosen:?} not within {present:?}");
            if present.len() >= 4 {
                kept += chosen.len();
                offered += present.len();
                expected_kept += present.len() as f64 / 2.0 + 0.5f64.powi(present.len() as i32);
            }
        }
    }
    let (rate, expected) = (kept as f64 / offered as f64, expected_kept / offered as f64);
    let sigma = (0.25 / offered as f64).sqrt();
    assert!((rate - expected).abs() < 4.0 * sigma, "keep rate {rate}, expected {expected} ± {sigma}");
    // The two views are drawn independently: they differ in most rows with several modalities.
    let differ = (0..used.len()).filter(|&k| views[0].row(k) != views[1].row(k)).count();
    assert!(differ as f64 > 0.8 * used.len() as f64, "{differ} of {}", used.len());
    // Same (seed, counter): same draws; another counter: other draws.
    let again = draw_views(mask.view(), &mut objective_rng(5, 0, Objective::FusedContrastive));
    assert_eq!(again, (used.clone(), views.clone()));
    let other = draw_views(mask.view(), &mut objective_rng(5, 1, Objective::FusedContrastive));
    assert_ne!(other.1, views);
}

#[test]
fn neighbours_are_the_most_similar_rows_sharing_a_modality() {
    // Embeddings along one axis: e_m(r) = (cos θ_r, sin θ_r), the same for
    // every modality a row has, so similarity is cos(θ_r − θ_q).
    let angles = [0.0f64, 0.1, 0.25, 1.0, 1.05, 3.0];
    let n = angles.len();
    let mut mask = Array2::from_elem((n, NUM_MODALITIES), false);
    for r in 0..n {
        mask[[r, 0]] = true;
    }
    mask[[5, 0]] = false; // row 5 shares no modality with the others...
    mask[[5, 3]] = true;
    mask[[4, 3]] = true; // ...except row 4
    let emb = Array3::from_shape_fn((n, NUM_MODALITIES, 2), |(r, m, i)| {
        if !mask[[r, m]] {
            0.0
        } else if i == 0 {
            angles[r].cos()
        } else {
            angles[r].sin()
        }
    });
    let rows: Vec<usize> = (0..n).collect();
    let none = nearest_positives(emb.view(), mask.view(), &rows, 0);
    assert_eq!(none, (0..n).map(|k| vec![k]).collect::<Vec<_>>());
    let two = nearest_positives(emb.view(), mask.view(), &rows, 2);
    assert_eq!(two[0], vec![0, 1, 2]);
    assert_eq!(two[1], vec![1, 0, 2]);
    assert_eq!(two[3], vec![3, 4, 2]);
    // Row 4 shares modality 0 with rows 0-3 and modality 3 with row 5:
    // similarity is the mean over the shared modalities.
    assert_eq!(two[4], vec![4, 3, 2]);
    assert_eq!(two[5], vec![5, 4], "only row 4 shares a modality with row 5");
    // More neighbours asked for than there are candidates: all of them.
    let many = nearest_positives(emb.view(), mask.view(), &rows, 10);
    assert_eq!(many[0].len(), 5, "rows 1-4 (row 5 shares nothing with row 0)");
    // Rows are indices into `rows`, which may skip batch rows.
    let some = vec![1, 3, 4];
    assert_eq!(nearest_positives(emb.view(), mask.view(), &some, 1), vec![vec![0, 1], vec![1, 2], vec![2, 1]]);
}

#[test]
fn equal_similarities_go_to_the_lower_row() {
    let n = 4;
    let mask = Array2::from_shape_fn((n, NUM_MODALITIES), |(_, m)| m == 2);
    let emb = Array3::from_shape_fn((n, NUM_MODALITIES, 3), |(_, m, i)| if m == 2 && i == 0 { 1.0f32 } else { 0.0 });
    let rows: Vec<usize> = (0..n).collect();
    let got = nearest_positives(emb.view(), mask.view(), &rows, 2);
    assert_eq!(got, vec![vec![0, 1, 2], vec![1, 0, 2], vec![2, 0, 1], vec![3, 0, 1]]);
}

#[test]
fn given_neighbours_map_to_the_rows_used_and_skip_the_others() {
    // Batch rows 0..5; row 2 has no modality (not used), so rows map to 0, 1, _, 2, 3.
    let rows = [0usize, 1, 3, 4];
    let given = vec![vec![2, 1], vec![0, 4], vec![], vec![4, 0, 1], vec![3]];
    let got = given_positives(&rows, &given);
    assert_eq!(got, vec![vec![0, 1], vec![1, 0, 3], vec![2, 3, 0, 1], vec![3, 2]]);
}

#[test]
fn with_inputs_as_the_space_the_positives_are_the_inputs_nearest_rows() {
    // Two clusters of inputs; the initial embeddings do not know them.
    let batch = 10;
    let dims = [3usize, 5, 18, 18, 18, 18, 18];
    let xs: [Array2<f64>; NUM_MODALITIES] = std::array::from_fn(|m| {
        Array2::from_shape_fn((batch, dims[m]), |(r, c)| {
            let centre = if r % 2 == 0 { 1.0 } else { -1.0 };
            centre + 0.05 * (((r * 31 + c * 17 + m * 7) % 13) as f64 - 6.0)
        })
    });
    let mut mask = Array2::from_elem((batch, NUM_MODALITIES), false);
    mask.slice_mut(ndarray::s![.., ..2]).fill(true);
    mask[[9, 0]] = false;
    let views: [Option<ndarray::ArrayView2<f64>>; NUM_MODALITIES] = std::array::from_fn(|m| (m < 2).then(|| xs[m].view()));
    let input = EncoderInput::dense(views, mask.view()).unwrap();
    let config = |space| Config { embed_dim: 8, hidden_dim: 8, num_heads: 2, input_dims: dims, fused_neighbors: 3, fused_neighbor_space: space, ..Config::default() };
    let model = LearnableMultiModal::<f64>::new(config(NeighborSpace::Inputs)).unwrap();
    let train = TrainBatch::inputs(input.clone());
    let draws = model.objective_draws(&train).unwrap();
    // Expected: the 3 nearest by mean squared difference over shared modalities.
    let expected: Vec<Vec<usize>> = (0..batch)
        .map(|r| {
            let mut d: Vec<(f64, usize)> = (0..batch)
                .filter(|&q| q != r)
                .map(|q| {
                    let shared: Vec<usize> = (0..2).filter(|&m| mask[[r, m]] && mask[[q, m]]).collect();
                    let sq: f64 = shared.iter().map(|&m| (&xs[m].row(r) - &xs[m].row(q)).mapv(|v| v * v).sum()).sum();
                    (sq / shared.iter().map(|&m| dims[m] as f64).sum::<f64>(), q)
                })
                .collect();
            d.sort_by(|a, b| a.partial_cmp(b).unwrap());
            d.into_iter().take(3).map(|(_, q)| q).collect()
        })
        .collect();
    assert_eq!(draws.fused.positives, given_positives(&draws.fused.rows, &expected));
    // Every neighbour is of the row's own cluster; by the embeddings they are not all so.
    for (k, pos) in draws.fused.positives.iter().enumerate() {
        assert!(pos.iter().all(|&p| p % 2 == k % 2), "row {k}: {pos:?}");
    }
    let by_embeddings = LearnableMultiModal::<f64>::new(config(NeighborSpace::Embeddings)).unwrap();
    assert_ne!(by_embeddings.objective_draws(&train).unwrap().fused.positives, draws.fused.positives);
    // losses() previews what backward() computes with those positives.
    let weights = ObjectiveWeights::only(Objective::FusedContrastive);
    let mut trained = model.clone();
    assert_eq!(model.losses(&train, &weights).unwrap(), trained.backward(&train, &weights).unwrap());
    // Recorded embeddings have no inputs: the embeddings' neighbours, as by default.
    let emb = model.encode(&input).unwrap();
    let recorded = TrainBatch { source: EmbeddingSource::Embeddings { emb: emb.view(), mask: mask.view() }, fused: None, rewards: None };
    assert_eq!(model.objective_draws(&recorded).unwrap().fused, by_embeddings.objective_draws(&recorded).unwrap().fused);
}
