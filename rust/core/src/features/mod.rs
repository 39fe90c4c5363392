//! Turning graphs into fixed-length feature vectors: the original's 18
//! fingerprint features, or content-aware hashed Weisfeiler–Leman features;
//! one graph at a time or a batch in parallel.

pub mod fingerprint;
pub mod wl;

pub use fingerprint::{activation_bucket, fingerprint, text_fingerprint, FINGERPRINT_DIM};
pub use wl::{
    wl_features, wl_features_into, wl_text_features_into, WlParams, WL_DEFAULT_DIM, WL_DEFAULT_ITERATIONS,
};

use crate::error::{Error, Result};
use crate::graph::{Graph, TextUnit};
use ndarray::Array2;

/// Which featuriser turns a graph into a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureKind {
    /// The 18 SPEC features (sizes, activation and out-degree histograms).
    Fingerprint,
    /// Hashed WL subtree features over labels, activations and structure.
    Wl(WlParams),
}

impl FeatureKind {
    /// From the user-facing names: `"fingerprint"` (`dim` absent or 18,
    /// `iterations` absent) or `"wl"` (`dim`, `iterations` default to 256, 3).
    pub fn parse(kind: &str, dim: Option<i64>, iterations: Option<i64>) -> Result<Self> {
        match kind {
            "fingerprint" => {
                if let Some(d) = dim.filter(|&d| d != FINGERPRINT_DIM as i64) {
                    return Err(Error::invalid(
                        "dim",
                        format!("kind=\"fingerprint\" always has {FINGERPRINT_DIM} features; got dim={d}"),
                    ));
                }
                if let Some(i) = iterations {
                    return Err(Error::invalid(
                        "iterations",
                        format!("only kind=\"wl\" refines colours; got iterations={i} with kind=\"fingerprint\""),
                    ));
                }
                Ok(FeatureKind::Fingerprint)
            }
            "wl" => Ok(FeatureKind::Wl(WlParams::new(
                dim.unwrap_or(WL_DEFAULT_DIM as i64),
                iterations.unwrap_or(WL_DEFAULT_ITERATIONS as i64),
            )?)),
            other => Err(Error::invalid(
                "kind",
                format!("expected \"fingerprint\" or \"wl\", got {other:?}"),
            )),
        }
    }

    /// Length of the feature vector.
    pub fn dim(&self) -> usize {
        match self {
            FeatureKind::Fingerprint => FINGERPRINT_DIM,
            FeatureKind::Wl(p) => p.dim(),
        }
    }

    /// Writes the features of `graph` into `out` (`out.len() == self.dim()`);
    /// `TooLarge` on `arg` when the working memory of WL cannot be had.
    pub fn features_into(&self, arg: &str, graph: &Graph, out: &mut [f32]) -> Result<()> {
        match self {
            FeatureKind::Fingerprint => out.copy_from_slice(&fingerprint(graph)),
            FeatureKind::Wl(p) => wl_features_into(arg, graph, p, out)?,
        }
        Ok(())
    }

    /// Writes the features of `Graph::from_text_units(text, unit)` into `out`
    /// without building the graph; `TooLarge` on `arg` as [`Self::features_into`].
    pub fn text_features_into(&self, arg: &str, text: &str, unit: TextUnit, out: &mut [f32]) -> Result<()> {
        match self {
            FeatureKind::Fingerprint => out.copy_from_slice(&text_fingerprint(text, unit)),
            FeatureKind::Wl(p) => wl_text_features_into(arg, text, unit, p, out)?,
        }
        Ok(())
    }

    /// The features of `graph`, `[dim]`.
    pub fn features(&self, graph: &Graph) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.dim()];
        self.features_into("graph", graph, &mut out)?;
        Ok(out)
    }
}

/// Batches smaller than this are featurised on the calling thread.
const PARALLEL_MIN_ITEMS: usize = 16;
/// Items per task of a batched featurisation.
const ITEMS_PER_TASK: usize = 32;

/// Featurises `items` into `[N, dim]`, one row per item, rows computed in
/// parallel (the library's threads, see `kernels::threads`). The first
/// failing item's error is returned, about `items[i]`.
fn featurize_rows<T: Sync>(items: &[T], kind: &FeatureKind, row: impl Fn(&T, &mut [f32]) -> Result<()> + Sync + Send) -> Result<Array2<f32>> {
    let dim = kind.dim();
    let what = format!("the features of {} items × {dim}", items.len());
    let mut out = crate::memory::try_zeros::<f32>("items", &what, items.len().saturating_mul(dim))?;
    let rows = |first: usize, chunk: &mut [f32], items: &[T]| -> Result<()> {
        let mut rows = chunk.chunks_mut(dim).zip(items).enumerate();
        rows.try_for_each(|(k, (r, item))| row(item, r).map_err(|e| e.about(format!("items[{}]", first + k))))
    };
    if items.len() < PARALLEL_MIN_ITEMS {
        // Handing a few rows to the pool costs more than computing them here.
        rows(0, &mut out, items)?;
    } else {
        let failed: std::sync::Mutex<Option<(usize, Error)>> = std::sync::Mutex::new(None);
        let tasks: Vec<_> = out.chunks_mut(dim * ITEMS_PER_TASK).zip(items.chunks(ITEMS_PER_TASK)).enumerate().collect();
        crate::kernels::threads::for_each_item(tasks, |(t, (chunk, items))| {
            if let Err(err) = rows(t * ITEMS_PER_TASK, chunk, items) {
                let mut failed = failed.lock().unwrap_or_else(|e| e.into_inner());
                if failed.as_ref().is_none_or(|(first, _)| t < *first) {
                    *failed = Some((t, err));
                }
            }
        });
        if let Some((_, err)) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(err);
        }
    }
    Ok(Array2::from_shape_vec((items.len(), dim), out).expect("one row of dim per item"))
}

/// One input of [`featurize_items`]: a text (its graph is built on the fly)
/// or a graph.
#[derive(Debug, Clone, Copy)]
pub enum Featurizable<'a> {
    Text(&'a str),
    Graph(&'a Graph),
}

/// The features of a mixed batch of texts (as `unit` graphs) and graphs,
/// `[N, kind.dim()]`, in parallel.
pub fn featurize_items(items: &[Featurizable<'_>], unit: TextUnit, kind: &FeatureKind) -> Result<Array2<f32>> {
    featurize_rows(items, kind, |item, out| match *item {
        Featurizable::Text(t) => kind.text_features_into("items", t, unit, out),
        Featurizable::Graph(g) => kind.features_into("items", g, out),
    })
}

/// The features of every graph, `[N, kind.dim()]`, in parallel.
pub fn featurize(graphs: &[&Graph], kind: &FeatureKind) -> Result<Array2<f32>> {
    featurize_rows(graphs, kind, |g, out| kind.features_into("items", g, out))
}

/// The features of every text's graph (`Graph::from_text_units(text, unit)`),
/// `[N, kind.dim()]`, in parallel, without building the graphs.
pub fn featurize_texts<S: AsRef<str> + Sync>(texts: &[S], unit: TextUnit, kind: &FeatureKind) -> Result<Array2<f32>> {
    featurize_rows(texts, kind, |t, out| kind.text_features_into("items", t.as_ref(), unit, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_rows_equal_single_graph_features() {
        let texts = ["", "a", "hello", "world", "héllo wörld", "e\u{301}", "a\r\n\u{1F468}\u{200D}\u{1F469}b"];
        for kind in [FeatureKind::Fingerprint, FeatureKind::parse("wl", Some(32), Some(2)).unwrap()] {
            let graphs: Vec<Graph> = texts.iter().map(|t| Graph::from_text(t)).collect();
            let refs: Vec<&Graph> = graphs.iter().collect();
            let batch = featurize(&refs, &kind).unwrap();
            let from_texts = featurize_texts(&texts, TextUnit::Char, &kind).unwrap();
            assert_eq!(batch.dim(), (texts.len(), kind.dim()));
            assert_eq!(batch, from_texts);
            let mixed: Vec<Featurizable> = texts
                .iter()
                .zip(&graphs)
                .enumerate()
                .map(|(i, (t, g))| if i % 2 == 0 { Featurizable::Text(t) } else { Featurizable::Graph(g) })
                .collect();
            assert_eq!(featurize_items(&mixed, TextUnit::Char, &kind).unwrap(), batch);
            let graphemes: Vec<Graph> = texts.iter().map(|t| Graph::from_text_units(t, TextUnit::Grapheme)).collect();
            let refs: Vec<&Graph> = graphemes.iter().collect();
            assert_eq!(featurize_texts(&texts, TextUnit::Grapheme, &kind).unwrap(), featurize(&refs, &kind).unwrap());
            for (row, g) in batch.rows().into_iter().zip(&graphs) {
                assert_eq!(row.to_vec(), kind.features(g).unwrap());
            }
        }
    }

    #[test]
    fn empty_batch_has_zero_rows() {
        let kind = FeatureKind::parse("wl", Some(8), None).unwrap();
        assert_eq!(featurize(&[], &kind).unwrap().dim(), (0, 8));
        assert_eq!(featurize_texts::<&str>(&[], TextUnit::Grapheme, &kind).unwrap().dim(), (0, 8));
    }

    #[test]
    fn kind_is_parsed_with_clear_errors() {
        assert_eq!(FeatureKind::parse("fingerprint", None, None).unwrap(), FeatureKind::Fingerprint);
        assert_eq!(FeatureKind::parse("fingerprint", Some(18), None).unwrap().dim(), 18);
        assert_eq!(FeatureKind::parse("wl", None, None).unwrap().dim(), WL_DEFAULT_DIM);
        let msg = |r: Result<FeatureKind>| r.unwrap_err().to_string();
        assert!(msg(FeatureKind::parse("fingerprint", Some(32), None)).contains("dim=32"));
        assert!(msg(FeatureKind::parse("fingerprint", None, Some(2))).contains("iterations"));
        assert!(msg(FeatureKind::parse("wl", Some(-3), None)).contains("got -3"));
        assert!(msg(FeatureKind::parse("bag", None, None)).contains("\"bag\""));
    }
}
