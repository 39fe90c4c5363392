//! A batch of events as the encoder sees it: for each modality, the rows of
//! inputs it was given and the batch row (event) each belongs to.
//!
//! The dense numpy form (`x[m]: [B, d_m]` + presence mask `[B, M]`) and the
//! per-event form (several components of one modality in one event, pooled
//! by confidence) both become this; the model has one path for both.

use crate::error::{Error, Result};
use crate::modality::{Modality, NUM_MODALITIES};
use crate::real::Real;
use crate::validate::check_shape;
use ndarray::{Array2, ArrayView2, Axis, CowArray, Ix2};
use std::borrow::Cow;

/// The inputs of one modality in a batch. Each part is borrowed or owned,
/// so callers holding the data elsewhere (numpy arrays) pass it in place.
#[derive(Debug, Clone)]
pub struct ModalityInput<'a, T: Clone> {
    /// One row per component, `[N, d_m]`.
    pub x: CowArray<'a, T, Ix2>,
    /// The batch row each component belongs to (`N` entries, each `< B`).
    pub rows: Cow<'a, [usize]>,
    /// Pooling weight of each component (its confidence); `None` = equal.
    pub weights: Option<Cow<'a, [T]>>,
}

/// How the caller says which rows hold a modality: what a message about one
/// of those rows calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Presence {
    /// By a mask (or by the components given): "a row marked present".
    #[default]
    Marked,
    /// The caller takes no mask (every row it is given holds the modality):
    /// a plain row, as no mark of the caller's points at it.
    Unmarked,
}

/// Everything the encoder needs for a batch of `batch_size` events.
#[derive(Debug, Clone)]
pub struct EncoderInput<'a, T: Clone> {
    pub batch_size: usize,
    pub modalities: [Option<ModalityInput<'a, T>>; NUM_MODALITIES],
    /// How the caller marks the rows present (messages only).
    pub presence: Presence,
}

/// `0, 1, 2, ...`: the row indices of a small batch's fully present modality.
static ROW_INDICES: [usize; 256] = {
    let mut rows = [0; 256];
    let mut r = 0;
    while r < rows.len() {
        rows[r] = r;
        r += 1;
    }
    rows
};

/// The argument name used in messages about modality `m`'s input.
pub fn input_arg(m: usize) -> String {
    format!("inputs['{}']", Modality::ALL[m].name())
}

impl<'a, T: Real> EncoderInput<'a, T> {
    /// Dense form: `xs[m]` is `[B, d_m]` (or `None` when the modality is
    /// absent from every row) and `mask [B, M]` says which rows have it.
    /// Rows marked absent are never read (they may hold NaN); when every row
    /// is present the array is used in place, without a copy.
    pub fn dense(xs: [Option<ArrayView2<'a, T>>; NUM_MODALITIES], mask: ArrayView2<bool>) -> Result<Self> {
        check_shape("mask", &mask, &[None, Some(NUM_MODALITIES)])?;
        let batch_size = mask.nrows();
        let mut modalities: [Option<ModalityInput<'a, T>>; NUM_MODALITIES] = Default::default();
        for (m, (slot, x)) in modalities.iter_mut().zip(xs).enumerate() {
            let column = mask.column(m);
            let count = column.iter().filter(|&&p| p).count();
            if count == 0 {
                continue;
            }
            // Every row present (the usual case): the indices 0..B, borrowed
            // when the batch is small (no allocation per modality and call).
            let present: Cow<'a, [usize]> = match ROW_INDICES.get(..batch_size) {
                Some(all) if count == batch_size => Cow::Borrowed(all),
                _ => Cow::Owned(column.iter().enumerate().filter(|&(_, &p)| p).map(|(r, _)| r).collect()),
            };
            let x = x.ok_or_else(|| {
                Error::invalid(
                    "mask",
                    format!(
                        "marks modality '{}' present in row {} but no input array was given for it",
                        Modality::ALL[m].name(),
                        present[0]
                    ),
                )
            })?;
            if x.ndim() != 2 || x.nrows() != batch_size {
                check_shape(&input_arg(m), &x, &[Some(batch_size), None])?;
            }
            let x = if present.len() == batch_size {
                CowArray::from(x)
            } else {
                CowArray::from(x.select(Axis(0), &present))
            };
            *slot = Some(ModalityInput {
                x,
                rows: present,
                weights: None,
            });
        }
        Ok(EncoderInput { batch_size, modalities, presence: Presence::Marked })
    }

    /// Component form: for each modality `None` or its components
    /// (`x [N, d_m]`, `rows [N]`, `weights [N]`), checked here: row counts
    /// agree, rows index the batch, weights are finite and non-negative.
    /// Modalities with no components are dropped.
    pub fn components(batch_size: usize, parts: [Option<ModalityInput<'a, T>>; NUM_MODALITIES]) -> Result<Self> {
        // The mask and the pooling's per-event counts (the embeddings are
        // checked when they are allocated).
        let per_event = NUM_MODALITIES + 2 * std::mem::size_of::<usize>();
        // format_args!: the description is formatted only into an error (every event's call passes here)
        crate::memory::check("batch_size", format_args!("a batch of {batch_size} events"), batch_size, per_event)?;
        let mut modalities: [Option<ModalityInput<'a, T>>; NUM_MODALITIES] = Default::default();
        for (m, (slot, part)) in modalities.iter_mut().zip(parts).enumerate() {
            let Some(part) = part else { continue };
            let ModalityInput { x, rows, weights } = &part;
            let arg = || input_arg(m);
            if rows.len() != x.nrows() {
                return Err(Error::invalid(
                    arg(),
                    format!("has {} rows but {} row indices were given", x.nrows(), rows.len()),
                ));
            }
            if let Some(&r) = rows.iter().find(|&&r| r >= batch_size) {
                return Err(Error::invalid(
                    arg(),
                    format!("row index {r} is out of range for a batch of {batch_size}"),
                ));
            }
            if let Some(w) = weights {
                if w.len() != rows.len() {
                    return Err(Error::invalid(
                        arg(),
                        format!("{} weights given for {} components", w.len(), rows.len()),
                    ));
                }
                if let Some(v) = w.iter().find(|v| !(v.is_finite() && **v >= T::zero())) {
                    return Err(Error::invalid(
                        arg(),
                        format!("component weight {v} is invalid; expected a finite number >= 0"),
                    ));
                }
            }
            if !rows.is_empty() {
                *slot = Some(part);
            }
        }
        Ok(EncoderInput { batch_size, modalities, presence: Presence::Marked })
    }

    /// The same input, its rows' presence said as `presence` in messages.
    pub fn with_presence(self, presence: Presence) -> Self {
        EncoderInput { presence, ..self }
    }

    /// How a message names row `row` of a present modality: `"row 3 (a row
    /// marked present)"` for a caller that marks rows present, else `"row 3"`.
    pub fn present_row(&self, row: usize) -> String {
        match self.presence {
            Presence::Marked => format!("row {row} (a row marked present)"),
            Presence::Unmarked => format!("row {row}"),
        }
    }

    /// Presence mask `[B, M]`: a modality is present in a row when at least
    /// one component belongs to it.
    pub fn mask(&self) -> Array2<bool> {
        let mut mask = Array2::from_elem((self.batch_size, NUM_MODALITIES), false);
        for (m, input) in self.modalities.iter().enumerate() {
            if let Some(input) = input {
                for &r in input.rows.iter() {
                    mask[[r, m]] = true;
                }
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn dense_borrows_full_columns_and_gathers_partial_ones() {
        let a = array![[1.0f32, 2.0], [3.0, 4.0]];
        let b = array![[f32::NAN], [5.0]];
        let mask = array![
            [true, true, false, false, false, false, false],
            [true, true, false, false, false, false, false]
        ];
        let mut partial = mask.clone();
        partial[[0, 1]] = false;
        let mut xs: [Option<ArrayView2<f32>>; 7] = Default::default();
        xs[0] = Some(a.view());
        xs[1] = Some(b.view());
        let input = EncoderInput::dense(xs, partial.view()).unwrap();
        let visual = input.modalities[0].as_ref().unwrap();
        assert!(visual.x.is_view());
        let auditory = input.modalities[1].as_ref().unwrap();
        assert_eq!(auditory.rows, vec![1]);
        assert_eq!(auditory.x, array![[5.0f32]]);
        assert_eq!(input.mask(), partial);
        xs[1] = None;
        let err = EncoderInput::dense(xs, mask.view()).unwrap_err().to_string();
        assert!(err.contains("auditory"), "{err}");
    }

    #[test]
    fn components_validate_rows_and_weights() {
        let part = |rows: Vec<usize>, weights: Option<Vec<f64>>| {
            let mut p: [Option<ModalityInput<f64>>; 7] = Default::default();
            p[2] = Some(ModalityInput {
                x: Array2::zeros((2, 3)).into(),
                rows: rows.into(),
                weights: weights.map(Into::into),
            });
            p
        };
        assert!(EncoderInput::components(2, part(vec![0, 2], None)).is_err());
        assert!(EncoderInput::components(1, part(vec![0, 0], Some(vec![1.0, -1.0]))).is_err());
        let input = EncoderInput::components(1, part(vec![0, 0], Some(vec![1.0, 0.5]))).unwrap();
        assert_eq!(input.mask().row(0).to_vec(), vec![false, false, true, false, false, false, false]);
    }

    #[test]
    fn present_rows_are_worded_as_the_caller_marks_them() {
        let mask = Array2::from_elem((1, 7), false);
        let input = EncoderInput::<f32>::dense(Default::default(), mask.view()).unwrap();
        assert_eq!(input.presence, Presence::Marked);
        assert_eq!(input.present_row(3), "row 3 (a row marked present)");
        assert_eq!(input.with_presence(Presence::Unmarked).present_row(3), "row 3");
    }

    #[test]
    fn components_borrow_what_they_are_given() {
        let x = Array2::<f32>::ones((2, 3));
        let (rows, weights) = ([0usize, 1], [0.5f32, 1.0]);
        let mut p: [Option<ModalityInput<f32>>; 7] = Default::default();
        p[0] = Some(ModalityInput {
            x: x.view().into(),
            rows: rows[..].into(),
            weights: Some(weights[..].into()),
        });
        let input = EncoderInput::components(2, p).unwrap();
        let visual = input.modalities[0].as_ref().unwrap();
        assert!(visual.x.is_view());
        assert!(matches!(visual.rows, Cow::Borrowed(_)) && matches!(visual.weights, Some(Cow::Borrowed(_))));
    }
}
