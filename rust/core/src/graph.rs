//! Directed graphs whose nodes carry an activation and a label, and the
//! builders that turn inputs into them.

use crate::error::{Error, Result};

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
        let labels: Vec<String> = text.chars().map(String::from).collect();
        let n = labels.len();
        Graph {
            activations: vec![1.0; n],
            labels,
            edges: (1..n).map(|i| (i - 1, i)).collect(),
        }
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
        let activations = match activations {
            None => vec![1.0; num_nodes],
            Some(a) => {
                if a.len() != num_nodes {
                    return Err(Error::shape(
                        "activations",
                        format!("({num_nodes},) (one per node)"),
                        format!("({},)", a.len()),
                    ));
                }
                if let Some(i) = a.iter().position(|v| !v.is_finite()) {
                    return Err(Error::non_finite("activations", format!("index {i}")));
                }
                a
            }
        };
        let labels = match labels {
            None => vec![String::new(); num_nodes],
            Some(l) => {
                if l.len() != num_nodes {
                    return Err(Error::shape(
                        "labels",
                        format!("({num_nodes},) (one per node)"),
                        format!("({},)", l.len()),
                    ));
                }
                l
            }
        };
        let mut checked = Vec::with_capacity(edges.len());
        for (k, &[s, t]) in edges.iter().enumerate() {
            let in_range = |v: i64| v >= 0 && (v as u64) < num_nodes as u64;
            if !in_range(s) || !in_range(t) {
                return Err(Error::invalid(
                    "edges",
                    format!(
                        "edge {k} is ({s}, {t}) but node indices must be in 0..{num_nodes} (num_nodes={num_nodes})"
                    ),
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Graph::from_edges(3, &[[0, 3]], None, None).is_err());
        assert!(Graph::from_edges(3, &[[-1, 0]], None, None).is_err());
        assert!(Graph::from_edges(2, &[], Some(vec![1.0]), None).is_err());
        assert!(Graph::from_edges(2, &[], Some(vec![1.0, f32::NAN]), None).is_err());
    }
}
