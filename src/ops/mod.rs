//! One module per operation family: the parameter struct a kernel reads, the launcher that
//! binds buffers and picks the grid, and the CPU reference in plain Rust (f64) beside it.

pub mod check;
pub mod relu;
