//! The float type the model is generic over: `f32` for users, `f64` for
//! gradient checks against finite differences.

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::Float;
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

pub trait Real:
    Float
    + crate::memory::Zeroable
    + LinalgScalar
    + ScalarOperand
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + 'static
{
    /// A constant of this type (`T::c(0.01)`).
    fn c(v: f64) -> Self;
}

impl Real for f32 {
    #[inline]
    fn c(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    #[inline]
    fn c(v: f64) -> Self {
        v
    }
}
