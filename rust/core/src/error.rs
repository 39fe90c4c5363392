//! The one error type of the core. The bindings map every variant to its class
//! in `grapheme_multimodal.exceptions` (all `ValueError`s); each message names the argument, what was given and what was
//! expected, so it can be shown to a user unchanged.

/// Everything that can go wrong when the core is handed bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An array has the wrong shape.
    #[error("{arg}: expected shape {expected}, got {got}")]
    Shape {
        arg: String,
        expected: String,
        got: String,
    },
    /// An array holds NaN or infinity where finite numbers are required.
    #[error("{arg}: contains a non-finite value (NaN or inf) at {at}; expected finite numbers")]
    NonFinite { arg: String, at: String },
    /// Any other invalid value.
    #[error("{arg}: {message}")]
    Invalid { arg: String, message: String },
    /// A size whose memory cannot be had, or whose byte count overflows.
    #[error("{arg}: {message}")]
    TooLarge { arg: String, message: String },
    /// Finite inputs or settings whose result would not be finite (a
    /// float32 overflow); nothing was changed.
    #[error("{arg}: {message}")]
    Overflow { arg: String, message: String },
}

impl Error {
    pub fn shape(arg: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::Shape {
            arg: arg.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub fn invalid(arg: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            arg: arg.into(),
            message: message.into(),
        }
    }

    pub fn too_large(arg: impl Into<String>, message: impl Into<String>) -> Self {
        Error::TooLarge {
            arg: arg.into(),
            message: message.into(),
        }
    }

    pub fn overflow(arg: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Overflow {
            arg: arg.into(),
            message: message.into(),
        }
    }

    /// The argument the error is about.
    pub fn arg(&self) -> &str {
        match self {
            Error::Shape { arg, .. }
            | Error::NonFinite { arg, .. }
            | Error::Invalid { arg, .. }
            | Error::TooLarge { arg, .. }
            | Error::Overflow { arg, .. } => arg,
        }
    }

    /// The same error about `new` instead (a batch names the item, e.g.
    /// `items[3]`, where one item's computation named the batch).
    pub fn about(mut self, new: impl Into<String>) -> Self {
        match &mut self {
            Error::Shape { arg, .. }
            | Error::NonFinite { arg, .. }
            | Error::Invalid { arg, .. }
            | Error::TooLarge { arg, .. }
            | Error::Overflow { arg, .. } => *arg = new.into(),
        }
        self
    }

    pub fn non_finite(arg: impl Into<String>, at: impl Into<String>) -> Self {
        Error::NonFinite {
            arg: arg.into(),
            at: at.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The accepted names for an error message, quoted: `"a" or "b"`,
/// `"a", "b" or "c"`. Built from an enum's `ALL`, so the message cannot
/// fall behind a new variant.
pub fn expected_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("{n:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A number as a user would type it: plain when moderate, else in
/// scientific notation (`1e300`, not three hundred digits).
pub fn fmt_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Formats a shape the way numpy prints it: `(3, 18)`.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::expected_names;

    #[test]
    fn expected_names_are_quoted_and_joined_as_a_sentence() {
        assert_eq!(expected_names([]), "");
        assert_eq!(expected_names(["wl"]), "\"wl\"");
        assert_eq!(expected_names(["additive", "bilinear"]), "\"additive\" or \"bilinear\"");
        assert_eq!(expected_names(["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }

    #[test]
    fn an_error_can_be_moved_onto_another_argument() {
        let err = super::Error::too_large("items", "the WL colours of 9 nodes needs 72 B").about("items[3]");
        assert_eq!(err.arg(), "items[3]");
        assert_eq!(err.to_string(), "items[3]: the WL colours of 9 nodes needs 72 B");
    }

    #[test]
    fn unknown_names_are_refused_with_every_accepted_one() {
        use crate::nn::BinderKind;
        use crate::objectives::fused_contrastive::NeighborSpace;
        let binder = BinderKind::from_name("linear").unwrap_err().to_string();
        assert_eq!(binder, "binder_kind: unknown binder kind \"linear\"; expected \"additive\" or \"bilinear\"");
        let space = NeighborSpace::from_name("labels").unwrap_err().to_string();
        assert_eq!(space, "fused_neighbor_space: unknown neighbour space \"labels\"; expected \"embeddings\" or \"inputs\"");
    }
}
