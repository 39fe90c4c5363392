//! Hashed Weisfeiler–Leman subtree features: what the nodes hold and how they
//! connect, in a fixed-length vector.
//!
//! - Colour 0 of a node hashes its label and its activation bucket (the
//!   fingerprint's `floor(clamp(a*7, 0, 7))`).
//! - Colour `t+1` hashes colour `t` with the sorted multisets of the colours
//!   of its in-neighbours and of its out-neighbours (kept apart, so edge
//!   direction counts; parallel edges count once each).
//! - Each colour of each depth `t = 0..=iterations` adds 1 to bucket
//!   `hash(t, colour) % dim`. Each depth's histogram is L2-normalised, the
//!   histograms are summed and the sum is L2-normalised: the result has unit
//!   length whatever the graph's size and every depth weighs the same. An
//!   empty graph gives zeros.
//!
//! The hash is stated exactly (tests/wl_reference.py restates it in Python):
//! a 64-bit state starts at the FNV-1a offset basis; a string's bytes go in
//! by FNV-1a 64 (`s = (s ^ byte) * 0x100000001b3`); a 64-bit word `w` goes
//! in as `s = mix(s ^ w)`, `mix` being the SplitMix64 finaliser; the result
//! is `mix(s)`. Colours are already mixed words, so word-at-a-time hashing
//! keeps them apart at a quarter of byte-wise FNV's cost. Nothing is seeded,
//! so features are identical across runs, processes and platforms.

use crate::error::{Error, Result};
use crate::features::fingerprint::activation_bucket;
use crate::graph::{Adjacency, Graph, TextUnit, TEXT_ACTIVATION};
use unicode_segmentation::UnicodeSegmentation;

/// Default number of hash buckets.
pub const WL_DEFAULT_DIM: usize = 256;
/// Default number of refinement rounds.
pub const WL_DEFAULT_ITERATIONS: usize = 3;
/// Largest `dim` accepted (a typo like `dim=10**12` must not try to allocate it).
pub const WL_MAX_DIM: usize = 1 << 22;
/// Largest `iterations` accepted.
pub const WL_MAX_ITERATIONS: usize = 64;

/// Validated WL settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WlParams {
    dim: usize,
    iterations: usize,
}

impl WlParams {
    /// `1 <= dim <= WL_MAX_DIM`, `0 <= iterations <= WL_MAX_ITERATIONS`
    /// (0 iterations = a hashed bag of node labels and activation buckets).
    pub fn new(dim: i64, iterations: i64) -> Result<Self> {
        if dim < 1 || dim as u64 > WL_MAX_DIM as u64 {
            return Err(Error::invalid(
                "dim",
                format!("expected an int in [1, {WL_MAX_DIM}] (the number of hash buckets), got {dim}"),
            ));
        }
        if iterations < 0 || iterations as u64 > WL_MAX_ITERATIONS as u64 {
            return Err(Error::invalid(
                "iterations",
                format!("expected an int in [0, {WL_MAX_ITERATIONS}] (refinement rounds), got {iterations}"),
            ));
        }
        Ok(WlParams {
            dim: dim as usize,
            iterations: iterations as usize,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn iterations(&self) -> usize {
        self.iterations
    }
}

impl Default for WlParams {
    fn default() -> Self {
        WlParams {
            dim: WL_DEFAULT_DIM,
            iterations: WL_DEFAULT_ITERATIONS,
        }
    }
}

/// FNV-1a 64 for bytes, the SplitMix64 finaliser for words and at the end;
/// every field is written with a domain tag and lengths, so different inputs
/// cannot share an encoding.
struct StableHasher(u64);

impl StableHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new(tag: u8) -> Self {
        StableHasher(mix(Self::OFFSET ^ tag as u64))
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(Self::PRIME);
        }
    }

    fn u64(&mut self, v: u64) {
        self.0 = mix(self.0 ^ v);
    }

    fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// The SplitMix64 finaliser: a bijection on u64 with full avalanche.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const TAG_INITIAL: u8 = 1;
const TAG_REFINE: u8 = 2;
const TAG_BUCKET: u8 = 3;

fn initial_colour(label: &str, activation: f32) -> u64 {
    let mut h = StableHasher::new(TAG_INITIAL);
    h.u64(label.len() as u64);
    h.bytes(label.as_bytes());
    h.u64(activation_bucket(activation) as u64);
    h.finish()
}

fn refined_colour(own: u64, incoming: &[u64], outgoing: &[u64]) -> u64 {
    let mut h = StableHasher::new(TAG_REFINE);
    h.u64(own);
    for side in [incoming, outgoing] {
        h.u64(side.len() as u64);
        for &c in side {
            h.u64(c);
        }
    }
    h.finish()
}

fn bucket(depth: usize, colour: u64, dim: usize) -> usize {
    let mut h = StableHasher::new(TAG_BUCKET);
    h.u64(depth as u64);
    h.u64(colour);
    (h.finish() % dim as u64) as usize
}

/// How nodes connect: a general graph (neighbour lists) or the chain
/// `0 -> 1 -> ... -> n-1` of a text or sequence, walked without lists.
enum Topology<'a> {
    Chain,
    General { incoming: &'a Adjacency, outgoing: &'a Adjacency },
}

/// The colours of `n` nodes, allocated fallibly (`TooLarge` on `arg`): a
/// graph's size comes from the user, and a text's node count from its length.
fn try_colours(arg: &str, n: usize) -> Result<Vec<u64>> {
    // A fixed text: formatting one per item would cost on the hot path (the size is in the error).
    crate::memory::try_with_capacity(arg, "the WL colours of the nodes", n)
}

/// Writes the WL features of `graph` into `out` (`out.len() == params.dim()`);
/// `TooLarge` on `arg` when its working memory cannot be had.
pub fn wl_features_into(arg: &str, graph: &Graph, params: &WlParams, out: &mut [f32]) -> Result<()> {
    let (incoming, outgoing) = graph.adjacency(arg)?;
    let mut colours = try_colours(arg, graph.node_count())?;
    colours.extend(graph.labels().iter().zip(graph.activations()).map(|(l, &a)| initial_colour(l, a)));
    refine_and_count(
        arg,
        colours,
        Topology::General {
            incoming: &incoming,
            outgoing: &outgoing,
        },
        params,
        out,
    )
}

/// The WL features of `Graph::from_text_units(text, unit)`, computed without
/// building the graph (no per-node strings or edge lists); equal bit for bit.
/// `TooLarge` on `arg` when its working memory cannot be had.
pub fn wl_text_features_into(arg: &str, text: &str, unit: TextUnit, params: &WlParams, out: &mut [f32]) -> Result<()> {
    // At most one node per char (graphemes group chars).
    let mut colours = try_colours(arg, text.chars().count())?;
    match unit {
        TextUnit::Char => colours.extend(text.chars().map(|c| initial_colour(c.encode_utf8(&mut [0u8; 4]), TEXT_ACTIVATION))),
        TextUnit::Grapheme => colours.extend(text.graphemes(true).map(|g| initial_colour(g, TEXT_ACTIVATION))),
    }
    refine_and_count(arg, colours, Topology::Chain, params, out)
}

fn refine_and_count(arg: &str, mut colours: Vec<u64>, topology: Topology<'_>, params: &WlParams, out: &mut [f32]) -> Result<()> {
    assert_eq!(out.len(), params.dim, "output row has the feature length");
    out.fill(0.0);
    let n = colours.len();
    if n == 0 {
        return Ok(());
    }
    let mut next = crate::memory::try_zeros::<u64>(arg, "the WL colours of the nodes", n)?;
    let mut total = crate::memory::try_zeros::<f64>(arg, "the WL histograms", params.dim)?;
    let mut histogram = crate::memory::try_zeros::<f64>(arg, "the WL histograms", params.dim)?;
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    for depth in 0..=params.iterations {
        if depth > 0 {
            match topology {
                Topology::Chain => {
                    for v in 0..n {
                        let before = if v > 0 { std::slice::from_ref(&colours[v - 1]) } else { &[] };
                        let after = if v + 1 < n { std::slice::from_ref(&colours[v + 1]) } else { &[] };
                        next[v] = refined_colour(colours[v], before, after);
                    }
                }
                Topology::General { incoming, outgoing } => {
                    for v in 0..n {
                        ins.clear();
                        ins.extend(incoming.neighbours(v).iter().map(|&u| colours[u]));
                        ins.sort_unstable();
                        outs.clear();
                        outs.extend(outgoing.neighbours(v).iter().map(|&u| colours[u]));
                        outs.sort_unstable();
                        next[v] = refined_colour(colours[v], &ins, &outs);
                    }
                }
            }
            std::mem::swap(&mut colours, &mut next);
        }
        histogram.fill(0.0);
        for &c in &colours {
            histogram[bucket(depth, c, params.dim)] += 1.0;
        }
        let norm = histogram.iter().map(|x| x * x).sum::<f64>().sqrt();
        for (t, h) in total.iter_mut().zip(&histogram) {
            *t += h / norm;
        }
    }
    let norm = total.iter().map(|x| x * x).sum::<f64>().sqrt();
    for (o, t) in out.iter_mut().zip(&total) {
        *o = (t / norm) as f32;
    }
    Ok(())
}

/// The WL features of `graph`, `[dim]`; `TooLarge` on `"graph"` when its
/// working memory cannot be had.
pub fn wl_features(graph: &Graph, params: &WlParams) -> Result<Vec<f32>> {
    let mut out = vec![0.0; params.dim];
    wl_features_into("graph", graph, params, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::fingerprint;

    fn wl(g: &Graph, dim: i64, iterations: i64) -> Vec<f32> {
        wl_features(g, &WlParams::new(dim, iterations).unwrap()).unwrap()
    }

    fn text(t: &str) -> Graph {
        Graph::from_text(t)
    }

    #[test]
    fn equal_length_different_texts_differ_where_the_fingerprint_cannot_tell() {
        for (a, b) in [("cat", "dog"), ("cat", "act"), ("abab", "aabb"), ("hello", "world")] {
            assert_eq!(fingerprint(&text(a)), fingerprint(&text(b)), "{a} vs {b}");
            assert_ne!(wl(&text(a), 256, 3), wl(&text(b), 256, 3), "{a} vs {b}");
        }
    }

    #[test]
    fn anagrams_need_refinement_to_differ() {
        // Same bag of characters: depth 0 alone cannot separate them.
        assert_eq!(wl(&text("cat"), 64, 0), wl(&text("act"), 64, 0));
        assert_ne!(wl(&text("cat"), 64, 1), wl(&text("act"), 64, 1));
    }

    #[test]
    fn edge_direction_matters() {
        assert_ne!(wl(&text("ab"), 256, 2), wl(&text("ba"), 256, 2));
    }

    #[test]
    fn relabelled_isomorphic_graphs_get_identical_features() {
        // A small graph with a cycle, a self-loop and a parallel edge, and the
        // same graph with its nodes permuted by p: node i becomes p[i].
        let labels = ["x", "y", "x", "z", "y"];
        let acts = [1.0, 0.2, 0.5, 0.0, 0.9];
        let edges = [[0, 1], [1, 2], [2, 0], [2, 3], [3, 3], [3, 4], [3, 4], [4, 0]];
        let p = [3usize, 0, 4, 1, 2];
        let mut plabels = vec![String::new(); 5];
        let mut pacts = vec![0.0; 5];
        for i in 0..5 {
            plabels[p[i]] = labels[i].to_string();
            pacts[p[i]] = acts[i];
        }
        let mut pedges: Vec<[i64; 2]> = edges.iter().map(|&[s, t]| [p[s as usize] as i64, p[t as usize] as i64]).collect();
        pedges.reverse(); // edge order must not matter either
        let g = Graph::from_edges(5, &edges, Some(acts.to_vec()), Some(labels.iter().map(|s| s.to_string()).collect())).unwrap();
        let h = Graph::from_edges(5, &pedges, Some(pacts), Some(plabels)).unwrap();
        assert_eq!(wl(&g, 128, 4), wl(&h, 128, 4));
    }

    #[test]
    fn features_have_unit_length_and_size_does_not_dominate() {
        let short = wl(&text(&"abc".repeat(100)), 256, 3);
        let long = wl(&text(&"abc".repeat(1000)), 256, 3);
        for f in [&short, &long] {
            let norm: f32 = f.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
        let cos: f32 = short.iter().zip(&long).map(|(a, b)| a * b).sum();
        assert!(cos > 0.99, "a pattern 10x longer looks alike, not 10x bigger (cos {cos})");
        let other = wl(&text(&"acb".repeat(1000)), 256, 3);
        let cos_other: f32 = other.iter().zip(&long).map(|(a, b)| a * b).sum();
        assert!(cos_other < 0.5, "another pattern over the same letters differs (cos {cos_other})");
    }

    #[test]
    fn empty_graph_gives_zeros() {
        assert_eq!(wl(&text(""), 16, 3), vec![0.0; 16]);
    }

    #[test]
    fn activation_buckets_colour_nodes() {
        let lo = Graph::from_sequence(&[0.1, 0.9], Some(crate::graph::ValueRange::new(0.0, 1.0).unwrap())).unwrap();
        let hi = Graph::from_sequence(&[0.9, 0.1], Some(crate::graph::ValueRange::new(0.0, 1.0).unwrap())).unwrap();
        assert_ne!(wl(&lo, 64, 1), wl(&hi, 64, 1));
    }

    #[test]
    fn grapheme_and_char_graphs_differ_for_combining_marks() {
        let t = "e\u{301}";
        let chars = Graph::from_text_units(t, TextUnit::Char);
        let graphemes = Graph::from_text_units(t, TextUnit::Grapheme);
        assert_ne!(wl(&chars, 64, 2), wl(&graphemes, 64, 2));
    }

    #[test]
    fn hash_is_pinned() {
        // FNV-1a 64 + SplitMix64 finish: these values must never change, on
        // any platform, or saved models fed WL features would silently break.
        let mut h = StableHasher(StableHasher::OFFSET);
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 of \"a\" (published test vector)");
        // SplitMix64's published first output for seed 0 is mix(0x9e3779b97f4a7c15).
        assert_eq!(mix(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        // "abca", dim 16, 2 iterations, as computed by the independent Python
        // statement of the algorithm in tests/wl_reference.py.
        let f = wl(&text("abca"), 16, 2);
        let expected: [f32; 16] = [
            0.25593963, 0.25593963, 0.0, 0.4649135, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.25593963, 0.0, 0.4179477, 0.25593963, 0.4649135, 0.25593963, 0.25593963,
        ];
        for (k, (got, want)) in f.iter().zip(&expected).enumerate() {
            assert!((got - want).abs() < 1e-6, "bucket {k}: got {got}, pinned {want}");
        }
    }

    #[test]
    fn params_are_validated() {
        assert!(WlParams::new(0, 1).is_err());
        assert!(WlParams::new(-5, 1).unwrap_err().to_string().contains("dim"));
        assert!(WlParams::new(8, -1).unwrap_err().to_string().contains("iterations"));
        assert!(WlParams::new(WL_MAX_DIM as i64 + 1, 1).is_err());
        assert!(WlParams::new(8, WL_MAX_ITERATIONS as i64 + 1).is_err());
        assert_eq!(WlParams::new(1, 0).unwrap().dim(), 1);
    }
}
