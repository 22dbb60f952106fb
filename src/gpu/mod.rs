//! The GPU layer: device, limits, typed buffers, cached pipelines, dispatch and read-back.
//!
//! Everything above this module talks to wgpu only through these types, so that the same code
//! runs natively (Vulkan, Metal, DX12, GL) and in the browser (WebGPU).

mod buffer;
pub mod choice;
mod context;
mod launch;
mod timestamps;
mod usage;

pub use buffer::{
    BINDING_ALIGNMENT_BYTES, GpuBuffer, assert_f32, from_f16_bits, same_precision, to_f16_bits,
};
pub use choice::{GemmKey, GemmOp, KernelChoices, KernelPolicy, Variant};
pub use context::{Fault, GpuContext, GpuError, OptionalFeatures, describe_error, wide_lanes};
pub use launch::{
    Launch, MAX_LOOP_ITERATIONS, MAX_REDUCTION, MAX_WORKGROUPS_PER_DIMENSION, flat_workgroups, grid_2d,
};
pub use timestamps::launch_times;
pub use usage::{DeviceMemory, MemoryUse};
