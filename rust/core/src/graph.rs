//! Directed graphs whose nodes carry an activation and a label, and the
//! builders that turn inputs into them.

use crate::error::{Error, Result};
use crate::validate::check_finite;
use ndarray::{ArrayView1, ArrayView2};
use unicode_segmentation::UnicodeSegmentation;

/// What one node of a text graph stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextUnit {
    /// One Unicode scalar value (a Rust `char`, a Python `str` element): the
    /// original's behaviour.
    Char,
    /// One extended grapheme cluster (Unicode UAX #29): "e" + a combining
    /// accent, a ZWJ emoji sequence or CRLF is one node.
    Grapheme,
}

impl TextUnit {
    /// `"char"` or `"grapheme"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "char" => Ok(TextUnit::Char),
            "grapheme" => Ok(TextUnit::Grapheme),
            other => Err(Error::invalid(
                "unit",
                format!("expected \"char\" or \"grapheme\", got {other:?}"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TextUnit::Char => "char",
            TextUnit::Grapheme => "grapheme",
        }
    }
}

/// The activation of every text node.
pub const TEXT_ACTIVATION: f32 = 1.0;

/// The closed interval that input values are mapped from onto [0, 1] by the
/// image and sequence builders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueRange {
    pub low: f32,
    pub high: f32,
}

impl ValueRange {
    /// A range with finite `low < high`.
    pub fn new(low: f32, high: f32) -> Result<Self> {
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(Error::invalid(
                "value_range",
                format!("expected finite (low, high) with low < high, got ({low}, {high})"),
            ));
        }
        Ok(ValueRange { low, high })
    }
}

/// Maps finite `values` onto [0, 1]: through `range` when given (values
/// outside it are clamped), else min-max over the values themselves. Constant
/// values with no range map to 0 (each value equals the minimum, and the
/// minimum maps to 0); pass a range to keep absolute levels.
fn scale_to_unit(values: impl Iterator<Item = f32>, arg: &str, range: Option<ValueRange>) -> Result<Vec<f32>> {
    let values: Vec<f32> = values.collect();
    check_finite(arg, &ArrayView1::from(&values))?;
    let (low, high) = match range {
        Some(r) => (r.low, r.high),
        None => values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v))),
    };
    // In f64 so that wide f32 ranges (e.g. -3e38..3e38) do not overflow.
    let span = high as f64 - low as f64;
    Ok(values
        .into_iter()
        .map(|v| {
            if span > 0.0 {
                ((v as f64 - low as f64) / span).clamp(0.0, 1.0) as f32
            } else {
                0.0
            }
        })
        .collect())
}

/// `given` (which must hold one entry per node), else `default` for every node.
fn one_per_node<T: Clone>(arg: &str, given: Option<Vec<T>>, num_nodes: usize, default: T) -> Result<Vec<T>> {
    match given {
        None => crate::memory::try_vec("num_nodes", &format!("the default {arg}"), num_nodes, default),
        Some(v) if v.len() == num_nodes => Ok(v),
        Some(v) => Err(Error::shape(arg, format!("({num_nodes},) (one per node)"), format!("({},)", v.len()))),
    }
}

/// The chain `0 -> 1 -> ... -> n-1`.
fn chain_edges(arg: &str, n: usize) -> Result<Vec<(usize, usize)>> {
    let mut edges = crate::memory::try_with_capacity(arg, "the edges", n.saturating_sub(1))?;
    edges.extend((1..n).map(|i| (i - 1, i)));
    Ok(edges)
}

/// Heap bytes of one text label (a small string's allocation).
const LABEL_HEAP_BYTES: usize = 32;

/// Bytes of one node: its activation, its label (without the text's heap) and its neighbour-list offsets.
const NODE_BYTES: usize = std::mem::size_of::<f32>() + std::mem::size_of::<String>() + 2 * std::mem::size_of::<usize>();
/// Bytes of one edge: its two indices, and its place in the in- and out-neighbour lists.
const EDGE_BYTES: usize = 2 * std::mem::size_of::<usize>() + 2 * std::mem::size_of::<usize>();

/// Refuses a graph of `nodes` nodes and `edges` edges that cannot fit in
/// memory (an activation, a label and `label_heap` bytes per node, two
/// indices per edge, and the neighbour lists featurising builds), naming `arg`.
fn check_graph_memory(arg: &str, nodes: usize, edges: usize, label_heap: usize) -> Result<()> {
    let per_node = NODE_BYTES + label_heap;
    let bytes = nodes.checked_mul(per_node).and_then(|a| edges.checked_mul(EDGE_BYTES).and_then(|b| a.checked_add(b)));
    let what = format!("a graph of {nodes} nodes and {edges} edges");
    match bytes {
        Some(bytes) => crate::memory::check(arg, &what, bytes, 1).map(|_| ()),
        // Not usize::MAX × 1 bytes, as if that were the count.
        None => Err(Error::too_large(arg, format!("{what} would need more bytes than any address space holds"))),
    }
}

/// A directed graph. Node `i` has `activations[i]` (finite f32) and
/// `labels[i]` (for text graphs, the character it stands for).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    activations: Vec<f32>,
    labels: Vec<String>,
    edges: Vec<(usize, usize)>,
}

impl Graph {
    /// One node per Unicode scalar value (whitespace included), activation
    /// 1.0, label = the character, and the chain `i -> i+1`.
    pub fn from_text(text: &str) -> Self {
        Self::from_text_units(text, TextUnit::Char)
    }

    /// A text graph with one node per `unit` (a char or an extended grapheme
    /// cluster), activation 1.0, labelled with the unit's text, chained
    /// `i -> i+1`. `to_text()` gives `text` back.
    pub fn from_text_units(text: &str, unit: TextUnit) -> Self {
        Self::try_from_text_units(text, unit).expect("a text graph that fits in memory")
    }

    /// [`Self::from_text_units`], with its memory checked first:
    /// `TooLarge` when the graph cannot fit.
    pub fn try_from_text_units(text: &str, unit: TextUnit) -> Result<Self> {
        // At most one node per char (graphemes group chars).
        let n = text.chars().count();
        check_graph_memory("text", n, n.saturating_sub(1), LABEL_HEAP_BYTES)?;
        let mut labels: Vec<String> = crate::memory::try_with_capacity("text", "the node labels", n)?;
        match unit {
            TextUnit::Char => labels.extend(text.chars().map(String::from)),
            TextUnit::Grapheme => labels.extend(text.graphemes(true).map(String::from)),
        }
        let n = labels.len();
        Ok(Graph {
            activations: crate::memory::try_vec("text", "the node activations", n, TEXT_ACTIVATION)?,
            labels,
            edges: chain_edges("text", n)?,
        })
    }

    /// A pixel-grid graph of an `[H, W]` image: node `r*W + c` per pixel
    /// (row-major), activation = intensity scaled to [0, 1] (see
    /// [`ValueRange`]; min-max over the image when `range` is `None`), empty
    /// labels, and an edge each way between 4-neighbours, so the out-degree
    /// is 2 at corners, 3 on borders and 4 inside.
    pub fn from_image(image: ArrayView2<'_, f32>, range: Option<ValueRange>) -> Result<Self> {
        let (h, w) = image.dim();
        // Checked here so the error names the pixel as (row, column).
        if let Some(((r, c), _)) = image.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::non_finite("image", format!("pixel ({r}, {c})")));
        }
        let num_edges = Self::check_image_size(h, w)?;
        let activations = scale_to_unit(image.iter().copied(), "image", range)?;
        let mut edges = crate::memory::try_with_capacity("image", "the edges", num_edges)?;
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                if c + 1 < w {
                    edges.push((i, i + 1));
                    edges.push((i + 1, i));
                }
                if r + 1 < h {
                    edges.push((i, i + w));
                    edges.push((i + w, i));
                }
            }
        }
        Ok(Graph {
            labels: crate::memory::try_vec("image", "the node labels", activations.len(), String::new())?,
            activations,
            edges,
        })
    }

    /// Refuses (naming `image`) an `h × w` pixel graph that cannot fit in
    /// memory; else its edge count. Callers that first copy the image into
    /// float32 check before the copy, which alone may not fit.
    pub fn check_image_size(h: usize, w: usize) -> Result<usize> {
        let num_edges = (h.saturating_mul(w.saturating_sub(1)).saturating_add(w.saturating_mul(h.saturating_sub(1)))).saturating_mul(2);
        check_graph_memory("image", h.saturating_mul(w), num_edges, 0)?;
        Ok(num_edges)
    }

    /// Refuses (naming `values`) a chain of `n` nodes that cannot fit in memory.
    pub fn check_sequence_size(n: usize) -> Result<()> {
        check_graph_memory("values", n, n.saturating_sub(1), 0)
    }

    /// A chain `i -> i+1` whose activations are `values` scaled to [0, 1]
    /// (see [`ValueRange`]; min-max over the values when `range` is `None`),
    /// with empty labels: audio frames, joint angles, any 1-D signal.
    pub fn from_sequence(values: &[f32], range: Option<ValueRange>) -> Result<Self> {
        let n = values.len();
        Self::check_sequence_size(n)?;
        let activations = scale_to_unit(values.iter().copied(), "values", range)?;
        Ok(Graph {
            labels: crate::memory::try_vec("values", "the node labels", n, String::new())?,
            activations,
            edges: chain_edges("values", n)?,
        })
    }

    /// Refuses a graph of `num_nodes` nodes and `num_edges` edges (an edge
    /// list's) that cannot fit in memory, naming `edges` when they weigh more
    /// than the nodes, else `num_nodes`. Callers that first copy the edges
    /// (into int64, into pairs) check before the copy, which alone may not fit.
    pub fn check_edges_size(num_nodes: usize, num_edges: usize) -> Result<()> {
        let arg = if num_edges.saturating_mul(EDGE_BYTES) > num_nodes.saturating_mul(NODE_BYTES) { "edges" } else { "num_nodes" };
        check_graph_memory(arg, num_nodes, num_edges, 0)
    }

    /// A graph from an edge list. `activations` defaults to 1.0 per node and
    /// must be finite; `labels` default to empty strings. Edges may repeat
    /// (a multigraph) and may be self-loops.
    pub fn from_edges(
        num_nodes: usize,
        edges: &[[i64; 2]],
        activations: Option<Vec<f32>>,
        labels: Option<Vec<String>>,
    ) -> Result<Self> {
        Self::check_edges_size(num_nodes, edges.len())?;
        let activations = one_per_node("activations", activations, num_nodes, 1.0)?;
        check_finite("activations", &ArrayView1::from(&activations))?;
        let labels = one_per_node("labels", labels, num_nodes, String::new())?;
        let mut checked = crate::memory::try_with_capacity("edges", "the edges", edges.len())?;
        for (k, &[s, t]) in edges.iter().enumerate() {
            let in_range = |v: i64| v >= 0 && (v as u64) < num_nodes as u64;
            if !in_range(s) || !in_range(t) {
                return Err(Error::invalid("edges", format!("edge {k} is ({s}, {t}) but {}", node_index_range(num_nodes))));
            }
            checked.push((s as usize, t as usize));
        }
        Ok(Graph {
            activations,
            labels,
            edges: checked,
        })
    }

    pub fn node_count(&self) -> usize {
        self.activations.len()
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    pub fn activations(&self) -> &[f32] {
        &self.activations
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn edges(&self) -> &[(usize, usize)] {
        &self.edges
    }

    /// For each node, the nodes its edges come from (`incoming`) and go to
    /// (`outgoing`), as compressed rows: node `v`'s neighbours are
    /// `targets[offsets[v]..offsets[v+1]]`. Allocated fallibly: `TooLarge`
    /// on `arg` when memory runs out.
    pub fn adjacency(&self, arg: &str) -> Result<(Adjacency, Adjacency)> {
        let n = self.node_count();
        let incoming = Adjacency::build(arg, n, self.edges.iter().map(|&(s, t)| (t, s)))?;
        let outgoing = Adjacency::build(arg, n, self.edges.iter().copied())?;
        Ok((incoming, outgoing))
    }

    /// Number of edges leaving each node.
    pub fn out_degrees(&self) -> Vec<usize> {
        let mut deg = vec![0; self.node_count()];
        for &(s, _) in &self.edges {
            deg[s] += 1;
        }
        deg
    }

    /// The labels of the nodes, in order, concatenated: for a text graph the
    /// text it was built from.
    pub fn to_text(&self) -> String {
        self.labels.concat()
    }
}

/// Neighbour lists of every node in one buffer (compressed sparse rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Adjacency {
    fn build(arg: &str, n: usize, pairs: impl Iterator<Item = (usize, usize)> + Clone) -> Result<Self> {
        // A fixed text: formatting one per graph would cost on the hot path (the size is in the error).
        let what = "the neighbour lists of the graph";
        let mut offsets = crate::memory::try_zeros::<usize>(arg, what, n + 1)?;
        for (v, _) in pairs.clone() {
            offsets[v + 1] += 1;
        }
        for v in 0..n {
            offsets[v + 1] += offsets[v];
        }
        let mut fill = crate::memory::try_with_capacity(arg, what, n + 1)?;
        fill.extend_from_slice(&offsets);
        let mut targets = crate::memory::try_zeros::<usize>(arg, what, offsets[n])?;
        for (v, u) in pairs {
            targets[fill[v]] = u;
            fill[v] += 1;
        }
        Ok(Adjacency { offsets, targets })
    }

    /// The neighbours of node `v` (with repeats for parallel edges).
    pub fn neighbours(&self, v: usize) -> &[usize] {
        &self.targets[self.offsets[v]..self.offsets[v + 1]]
    }
}

/// What an edge's node indices must be, in words: Rust's `0..n` read as
/// if `n` itself were a valid index.
fn node_index_range(num_nodes: usize) -> String {
    match num_nodes {
        0 => "the graph has no nodes (num_nodes=0), so no edges".to_string(),
        n => format!("node indices must be 0 to {} (num_nodes={n})", n - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn text_graph_is_a_chain_of_characters() {
        let g = Graph::from_text("héllo wörld");
        assert_eq!(g.node_count(), 11);
        assert_eq!(g.edge_count(), 10);
        assert_eq!(g.edges()[3], (3, 4));
        assert!(g.activations().iter().all(|&a| a == 1.0));
        assert_eq!(g.to_text(), "héllo wörld");
    }

    #[test]
    fn empty_text_gives_empty_graph() {
        let g = Graph::from_text("");
        assert_eq!((g.node_count(), g.edge_count()), (0, 0));
        assert_eq!(g.to_text(), "");
    }

    #[test]
    fn from_edges_validates() {
        let g = Graph::from_edges(3, &[[0, 1], [1, 2], [2, 2]], Some(vec![0.1, 0.5, 1.0]), None).unwrap();
        assert_eq!(g.out_degrees(), vec![1, 1, 1]);
        let err = Graph::from_edges(3, &[[0, 3]], None, None).unwrap_err().to_string();
        assert!(err.contains("edge 0 is (0, 3) but node indices must be 0 to 2 (num_nodes=3)"), "{err}");
        let err = Graph::from_edges(0, &[[0, 0]], None, None).unwrap_err().to_string();
        assert!(err.contains("edge 0 is (0, 0) but the graph has no nodes (num_nodes=0), so no edges"), "{err}");
        assert!(Graph::from_edges(3, &[[-1, 0]], None, None).is_err());
        assert!(Graph::from_edges(2, &[], Some(vec![1.0]), None).is_err());
        assert!(Graph::from_edges(2, &[], Some(vec![1.0, f32::NAN]), None).is_err());
    }

    fn grapheme_labels(text: &str) -> Vec<String> {
        Graph::from_text_units(text, TextUnit::Grapheme).labels().to_vec()
    }

    #[test]
    fn combining_accent_is_one_grapheme_but_two_chars() {
        let text = "cafe\u{301}"; // "café" with a combining acute accent
        assert_eq!(Graph::from_text_units(text, TextUnit::Char).node_count(), 5);
        let g = Graph::from_text_units(text, TextUnit::Grapheme);
        assert_eq!(g.labels(), ["c", "a", "f", "e\u{301}"]);
        assert_eq!(g.edges(), [(0, 1), (1, 2), (2, 3)]);
        assert_eq!(g.to_text(), text);
    }

    #[test]
    fn zwj_family_emoji_is_one_grapheme() {
        // man ZWJ woman ZWJ girl ZWJ boy: 7 chars, one cluster.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        let text = format!("a{family}b");
        assert_eq!(Graph::from_text_units(&text, TextUnit::Char).node_count(), 9);
        assert_eq!(grapheme_labels(&text), ["a", family, "b"]);
    }

    #[test]
    fn crlf_is_one_grapheme_and_lone_cr_lf_are_not_merged_across() {
        assert_eq!(grapheme_labels("a\r\nb"), ["a", "\r\n", "b"]);
        assert_eq!(grapheme_labels("a\n\rb"), ["a", "\n", "\r", "b"]);
        assert_eq!(Graph::from_text_units("a\r\nb", TextUnit::Char).node_count(), 4);
    }

    #[test]
    fn text_unit_parses_its_names_only() {
        assert_eq!(TextUnit::parse("char").unwrap(), TextUnit::Char);
        assert_eq!(TextUnit::parse("grapheme").unwrap(), TextUnit::Grapheme);
        let err = TextUnit::parse("word").unwrap_err().to_string();
        assert!(err.contains("unit") && err.contains("word"), "{err}");
    }

    #[test]
    fn image_graph_is_a_four_neighbour_grid_scaled_to_unit() {
        let img = array![[0.0f32, 5.0, 10.0], [10.0, 5.0, 0.0]];
        let g = Graph::from_image(img.view(), None).unwrap();
        assert_eq!(g.node_count(), 6);
        // 2 rows x 2 horizontal pairs + 3 vertical pairs, each both ways.
        assert_eq!(g.edge_count(), 2 * (2 * 2 + 3));
        assert_eq!(g.activations(), [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]);
        assert_eq!(g.out_degrees(), vec![2, 3, 2, 2, 3, 2]);
        assert!(g.edges().contains(&(1, 4)) && g.edges().contains(&(4, 1)));
        assert!(!g.edges().contains(&(2, 3)), "no wrap-around between rows");
    }

    #[test]
    fn image_with_explicit_range_keeps_absolute_levels() {
        let img = array![[0.0f32, 255.0], [51.0, 300.0]];
        let g = Graph::from_image(img.view(), Some(ValueRange::new(0.0, 255.0).unwrap())).unwrap();
        assert_eq!(g.activations(), [0.0, 1.0, 0.2, 1.0]);
    }

    #[test]
    fn constant_inputs_map_to_zero_without_a_range() {
        let g = Graph::from_image(array![[3.0f32, 3.0], [3.0, 3.0]].view(), None).unwrap();
        assert_eq!(g.activations(), [0.0; 4]);
        let s = Graph::from_sequence(&[7.0, 7.0, 7.0], None).unwrap();
        assert_eq!(s.activations(), [0.0; 3]);
        let s = Graph::from_sequence(&[7.0], Some(ValueRange::new(0.0, 14.0).unwrap())).unwrap();
        assert_eq!(s.activations(), [0.5]);
    }

    #[test]
    fn sequence_graph_is_a_scaled_chain() {
        let g = Graph::from_sequence(&[-1.0, 0.0, 3.0], None).unwrap();
        assert_eq!(g.activations(), [0.0, 0.25, 1.0]);
        assert_eq!(g.edges(), [(0, 1), (1, 2)]);
        assert_eq!(g.labels(), ["", "", ""]);
        let empty = Graph::from_sequence(&[], None).unwrap();
        assert_eq!((empty.node_count(), empty.edge_count()), (0, 0));
    }

    #[test]
    fn builders_reject_non_finite_values_and_bad_ranges() {
        let err = Graph::from_image(array![[0.0f32, 1.0], [f32::NAN, 2.0]].view(), None).unwrap_err();
        assert!(err.to_string().contains("pixel (1, 0)"), "{err}");
        let err = Graph::from_sequence(&[0.0, f32::INFINITY], None).unwrap_err();
        assert!(err.to_string().contains("values") && err.to_string().contains("index 1"), "{err}");
        assert!(ValueRange::new(1.0, 1.0).is_err());
        assert!(ValueRange::new(0.0, f32::NAN).is_err());
        assert!(ValueRange::new(2.0, 1.0).is_err());
    }

    #[test]
    fn wide_ranges_do_not_overflow() {
        let g = Graph::from_sequence(&[-3e38, 0.0, 3e38], None).unwrap();
        assert_eq!(g.activations(), [0.0, 0.5, 1.0]);
    }

    #[test]
    fn a_graph_whose_byte_count_overflows_says_so_without_a_made_up_size() {
        // The overflowed count was reported as "18446744073709551615 × 1 bytes".
        let err = Graph::from_edges(1 << 62, &[], None, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::TooLarge { .. }), "{msg}");
        assert!(msg.starts_with("num_nodes: a graph of 4611686018427387904 nodes") && msg.contains("any address space"), "{msg}");
        assert!(!msg.contains(&usize::MAX.to_string()), "{msg}");
    }

    #[test]
    fn an_edge_list_too_large_names_edges_and_a_node_count_too_large_names_num_nodes() {
        // The edges weigh more: naming num_nodes=2 sent the user to the wrong argument.
        let err = Graph::check_edges_size(2, 1 << 60).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }) && err.to_string().starts_with("edges: a graph of 2 nodes and 1152921504606846976 edges"), "{err}");
        let err = Graph::check_edges_size(1 << 60, 2).unwrap_err();
        assert!(err.to_string().starts_with("num_nodes: "), "{err}");
        assert!(Graph::check_edges_size(3, 2).is_ok());
    }

    #[test]
    fn adjacency_lists_in_and_out_neighbours_with_repeats() {
        let g = Graph::from_edges(3, &[[0, 1], [0, 1], [2, 1], [1, 1]], None, None).unwrap();
        let (incoming, outgoing) = g.adjacency("graph").unwrap();
        assert_eq!(outgoing.neighbours(0), [1, 1]);
        assert_eq!(incoming.neighbours(1), [0, 0, 2, 1]);
        assert_eq!(outgoing.neighbours(1), [1]);
        assert!(incoming.neighbours(0).is_empty());
    }
}
