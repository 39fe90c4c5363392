//! The original's 18 graph features ("fingerprint").
//!
//! `f[0] = n/100`, `f[1] = m/100`, `f[2+k]` = nodes in activation bucket `k`
//! / 10 (bucket = `floor(clamp(a*7, 0, 7))`), `f[10+k]` = nodes with
//! out-degree bucket `k` / 10 (bucket = `min(out_degree, 7)`).

use crate::graph::{Graph, TextUnit, TEXT_ACTIVATION};
use unicode_segmentation::UnicodeSegmentation;

/// Length of the fingerprint (`F` in the formulas).
pub const FINGERPRINT_DIM: usize = 18;

/// The activation bucket of the SPEC, `floor(clamp(a*7, 0, 7))`, in 0..8.
pub fn activation_bucket(activation: f32) -> usize {
    // `max` maps NaN to 0 as the clamp-then-floor did; on [0, 7] truncation
    // is `floor`, without a call to `floorf` or a saturating conversion.
    #[allow(clippy::manual_clamp)] // `clamp` would keep NaN, which must become 0
    let x = (activation * 7.0).max(0.0).min(7.0);
    // SAFETY: x is in [0, 7], representable as u32.
    unsafe { x.to_int_unchecked::<u32>() as usize }
}

/// The 18 SPEC features of `graph`.
pub fn fingerprint(graph: &Graph) -> [f32; FINGERPRINT_DIM] {
    let mut counts = [0usize; FINGERPRINT_DIM];
    let mut buckets = [0usize; 8];
    for &a in graph.activations() {
        buckets[activation_bucket(a) & 7] += 1; // always < 8: no bounds check
    }
    counts[2..10].copy_from_slice(&buckets);
    // Out-degrees saturate at 7: count them in bytes (no per-node usize).
    let n = graph.node_count();
    // A small graph's (a sentence's) degrees on the stack: no allocation per call.
    let (mut small, mut large) = ([0u8; 512], Vec::new());
    let degree: &mut [u8] = match small.get_mut(..n) {
        Some(degree) => degree,
        None => {
            large.resize(n, 0u8);
            &mut large
        }
    };
    for &(s, _) in graph.edges() {
        degree[s] = degree[s].saturating_add(1);
    }
    let mut by_degree = [0usize; 8];
    for &d in degree.iter() {
        by_degree[usize::from(d.min(7))] += 1;
    }
    counts[10..18].copy_from_slice(&by_degree);
    scale(counts, n, graph.edge_count())
}

/// The fingerprint of `Graph::from_text_units(text, unit)` from its number
/// of units alone (a chain of `n` nodes of activation 1.0); equal bit for bit.
pub fn text_fingerprint(text: &str, unit: TextUnit) -> [f32; FINGERPRINT_DIM] {
    let n = match unit {
        TextUnit::Char => text.chars().count(),
        TextUnit::Grapheme => text.graphemes(true).count(),
    };
    let mut counts = [0usize; FINGERPRINT_DIM];
    counts[2 + activation_bucket(TEXT_ACTIVATION)] = n;
    if n > 0 {
        counts[10] = 1; // the last node has no successor
        counts[11] = n - 1;
    }
    scale(counts, n, n.saturating_sub(1))
}

fn scale(counts: [usize; FINGERPRINT_DIM], nodes: usize, edges: usize) -> [f32; FINGERPRINT_DIM] {
    let mut f = counts.map(|c| c as f32 / 10.0);
    f[0] = nodes as f32 / 100.0;
    f[1] = edges as f32 / 100.0;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_matches_the_spec_example() {
        let f = fingerprint(&Graph::from_text("hello"));
        let mut expected = [0.0f32; FINGERPRINT_DIM];
        expected[0] = 0.05;
        expected[1] = 0.04;
        expected[9] = 0.5;
        expected[10] = 0.1;
        expected[11] = 0.4;
        assert_eq!(f, expected);
    }

    #[test]
    fn buckets_follow_activation_and_out_degree() {
        // Node 0 -> 1, 2, 3 (out-degree 3); activations hit buckets 0, 3, 6, 7.
        let g = Graph::from_edges(
            4,
            &[[0, 1], [0, 2], [0, 3]],
            Some(vec![-0.5, 0.5, 0.9, 2.0]),
            None,
        )
        .unwrap();
        let f = fingerprint(&g);
        assert_eq!(f[0], 0.04);
        assert_eq!(f[1], 0.03);
        for (k, want) in [(0, 0.1), (3, 0.1), (6, 0.1), (7, 0.1)] {
            assert_eq!(f[2 + k], want, "activation bucket {k}");
        }
        assert_eq!(f[10], 0.3, "three nodes of out-degree 0");
        assert_eq!(f[13], 0.1, "one node of out-degree 3");
    }

    #[test]
    fn text_fingerprint_equals_the_graph_fingerprint() {
        for t in ["", "a", "hello", "e\u{301}\r\n\u{1F468}\u{200D}\u{1F469}"] {
            for unit in [TextUnit::Char, TextUnit::Grapheme] {
                assert_eq!(text_fingerprint(t, unit), fingerprint(&Graph::from_text_units(t, unit)), "{t:?}");
            }
        }
    }

    #[test]
    fn activation_buckets_at_the_edges() {
        for (a, want) in [(f32::NAN, 0), (f32::NEG_INFINITY, 0), (-1.0, 0), (0.0, 0), (1.0 / 7.0, 1), (0.99, 6), (1.0, 7), (5.0, 7), (f32::INFINITY, 7)] {
            assert_eq!(activation_bucket(a), want, "activation {a}");
        }
    }

    #[test]
    fn out_degree_saturates_at_seven() {
        let edges: Vec<[i64; 2]> = (1..=9).map(|t| [0, t]).collect();
        let f = fingerprint(&Graph::from_edges(10, &edges, None, None).unwrap());
        assert_eq!(f[17], 0.1);
        assert_eq!(f[10], 0.9);
    }
}
