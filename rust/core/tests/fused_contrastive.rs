//! fused_contrastive's draws and neighbour sets (its gradients are checked
//! with the other objectives' in gradients.rs).

use grapheme_multimodal::objectives::fused_contrastive::{draw_views, nearest_positives};
use grapheme_multimodal::objectives::{objective_rng, Objective};
use grapheme_multimodal::NUM_MODALITIES;
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
