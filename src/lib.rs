//! Train ResNets on CIFAR-10 entirely on the GPU through WebGPU.
//!
//! Layers, each knowing only the one below: `ops` (one file per op family: launcher and CPU
//! reference) over `gpu` (device, buffers, pipelines, dispatch) over the WGSL files in
//! `shaders/`, listed once in [`shaders`].

pub mod app;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod data;
#[cfg(not(target_arch = "wasm32"))]
pub mod download;
#[cfg(not(target_arch = "wasm32"))]
pub mod fs_atomic;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod rng;
pub mod schedule;
pub mod shaders;
pub mod train;
pub mod untrusted;
#[cfg(target_arch = "wasm32")]
mod web;
