//! One module per operation family: the parameter struct a kernel reads, the launcher that
//! binds buffers and picks the grid, and the CPU reference in plain Rust (f64) beside it.

pub mod add;
pub mod batch_norm;
pub mod batch_norm_add_relu;
pub mod bias_grad;
pub mod check;
pub mod conv2d;
pub mod cross_entropy;
pub mod finite_check;
pub mod global_avg_pool;
pub mod linear;
pub mod matmul;
pub mod max_pool;
pub mod relu;
pub mod sgd;
pub mod split_k;
pub mod sum_of_squares;
pub mod upsample;
