//! The seven modalities, in the fixed order that is their slot index everywhere.

use crate::error::{Error, Result};

/// Number of modalities (`M` in the formulas).
pub const NUM_MODALITIES: usize = 7;

/// A sensory or abstract channel of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    Visual = 0,
    Auditory = 1,
    Linguistic = 2,
    Tactile = 3,
    Proprioceptive = 4,
    Action = 5,
    Abstract = 6,
}

impl Modality {
    /// All modalities in slot order.
    pub const ALL: [Modality; NUM_MODALITIES] = [
        Modality::Visual,
        Modality::Auditory,
        Modality::Linguistic,
        Modality::Tactile,
        Modality::Proprioceptive,
        Modality::Action,
        Modality::Abstract,
    ];

    /// Slot index (0..7).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The modality at slot `index`.
    pub fn from_index(index: usize) -> Result<Self> {
        Self::ALL.get(index).copied().ok_or_else(|| {
            Error::invalid(
                "modality",
                format!("index {index} is out of range; expected 0 to {}", NUM_MODALITIES - 1),
            )
        })
    }

    /// Lower-case name used in parameter names and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Visual => "visual",
            Modality::Auditory => "auditory",
            Modality::Linguistic => "linguistic",
            Modality::Tactile => "tactile",
            Modality::Proprioceptive => "proprioceptive",
            Modality::Action => "action",
            Modality::Abstract => "abstract",
        }
    }

    /// Parses a name case-insensitively.
    pub fn from_name(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.name() == lower)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|m| m.name()).collect();
                Error::invalid(
                    "modality",
                    format!("unknown modality {name:?}; expected one of {}", known.join(", ")),
                )
            })
    }

    /// Every modality but `Action` is an input.
    pub fn is_input(self) -> bool {
        self != Modality::Action
    }

    /// Only `Action` is an output.
    pub fn is_output(self) -> bool {
        self == Modality::Action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names_round_trip() {
        for (i, m) in Modality::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(Modality::from_index(i).unwrap(), *m);
            assert_eq!(Modality::from_name(m.name()).unwrap(), *m);
        }
        assert_eq!(Modality::from_name("VISUAL").unwrap(), Modality::Visual);
        assert!(Modality::from_name("smell").is_err());
        // in words: Rust's "expected 0..7" read as if slot 7 were one
        let err = Modality::from_index(7).unwrap_err().to_string();
        assert_eq!(err, "modality: index 7 is out of range; expected 0 to 6");
    }

    #[test]
    fn only_action_is_output() {
        for m in Modality::ALL {
            assert_eq!(m.is_output(), m == Modality::Action);
            assert_eq!(m.is_input(), m != Modality::Action);
        }
    }
}
