//! One fully connected layer `y = leaky?(x Wᵀ + b)`, `W [out, in]`, `b
//! [out]`: the building block of the per-modality encoders and the shared
//! projection head. Forward and backward side by side.

use super::ops::{leaky_relu, leaky_relu_backward_inplace, linear_backward, linear_t};
use crate::kernels::{self, Epilogue};
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};

/// `<prefix>.weight [out, in]` (DynamicXavier) and `<prefix>.bias [out]`
/// (zeros), followed by LeakyReLU when `leaky`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dense {
    pub weight: ParamId,
    pub bias: ParamId,
    pub leaky: bool,
}

impl Dense {
    /// Registers `<prefix>.weight` and `<prefix>.bias`.
    pub fn register(layout: &mut ParamLayout, prefix: &str, fan_in: usize, fan_out: usize, leaky: bool) -> Self {
        Dense {
            weight: layout.add(format!("{prefix}.weight"), &[fan_out, fan_in], Init::xavier(fan_in, fan_out)),
            bias: layout.add(format!("{prefix}.bias"), &[fan_out], Init::Zeros),
            leaky,
        }
    }

    /// The output width.
    pub fn out_dim<T>(&self, params: Params<T>) -> usize {
        params.vector(self.bias).len()
    }

    fn epilogue<'a, T: Real>(&self, params: Params<'a, T>) -> Epilogue<'a, T> {
        Epilogue::bias(params.slice(self.bias), self.leaky)
    }

    /// `x [N, in]` → `[N, out]`; large batches split across the library's
    /// threads (rows are independent: the same bits either way).
    pub fn forward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> Array2<T> {
        let mut out = Array2::zeros((x.nrows(), self.out_dim(params)));
        linear_t(x, params.matrix_t(self.weight).view(), Some(params.slice(self.bias)), self.leaky, out.view_mut());
        out
    }

    /// The forward pass into `out [N, out]` (any row stride) on the calling thread.
    pub fn forward_serial_into<T: Real>(&self, params: Params<T>, x: ArrayView2<T>, out: ArrayViewMut2<T>) {
        kernels::gemm_serial(x, params.matrix_t(self.weight).view(), out, self.epilogue(params), None);
    }

    /// One row `x [in]` → `leaky?(W x + b/a)`, `[out]` (the bias divided by
    /// `a`; see `ModalityEncoder::forward_row_scaled`).
    pub fn forward_row_bias_scaled<T: Real>(&self, params: Params<T>, x: ArrayView1<T>, a: T) -> Array1<T> {
        let (w, b) = (params.matrix(self.weight), params.vector(self.bias));
        let mut y = w.dot(&x);
        y.zip_mut_with(&b, |y, &b| {
            let v = *y + b / a;
            *y = if self.leaky { leaky_relu(v) } else { v };
        });
        y
    }

    /// From `d [N, out]`, the gradient on this layer's output `y` (changed
    /// in place into the gradient before the activation), accumulates `dW
    /// += dᵀ x` and `db += Σ_rows d`; returns `d W`, the gradient on the
    /// input `x`, when `want_dx`. LeakyReLU's backward reads the sign of `y`
    /// (or of any positive multiple of it, e.g. its L2-normalised rows).
    pub fn backward<T: Real>(
        &self,
        params: Params<T>,
        x: ArrayView2<T>,
        y: ArrayView2<T>,
        mut d: ArrayViewMut2<T>,
        grads: &mut ParamsMut<T>,
        want_dx: bool,
    ) -> Option<Array2<T>> {
        if self.leaky {
            leaky_relu_backward_inplace(y, d.view_mut());
        }
        let (dw, db) = grads.weight_and_bias(self.weight, self.bias);
        linear_backward(x, d.view(), dw, Some(db));
        want_dx.then(|| {
            let w = params.matrix(self.weight);
            let mut dx = Array2::zeros((d.nrows(), w.ncols()));
            kernels::gemm(d.view(), w, dx.view_mut(), Epilogue::store());
            dx
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn forward_by_hand_and_serial_path_agree() {
        let mut layout = ParamLayout::new();
        let d = Dense::register(&mut layout, "layer", 2, 3, true);
        // W = [[1, 0], [0.5, -1], [2, 3]], b = [0, 1, -9]
        let data = vec![1.0f64, 0.0, 0.5, -1.0, 2.0, 3.0, 0.0, 1.0, -9.0];
        let x = array![[1.0, 2.0]];
        let y = d.forward(layout.view(&data), x.view());
        assert_eq!(y, array![[1.0, -0.005, -0.01]]);
        let mut z = Array2::zeros((1, 3));
        d.forward_serial_into(layout.view(&data), x.view(), z.view_mut());
        assert_eq!(y, z);
        assert_eq!(layout.specs()[0].name, "layer.weight");
    }
}
