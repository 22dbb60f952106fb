//! What the process holds right now: the device memory the allocator has handed out and the
//! host memory resident, to see that a long run stays flat.

use std::fmt;

use super::GpuContext;

/// Device memory by the driver allocator's own count (natively: Vulkan, DX12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Live allocations (buffers and the like).
    pub allocations: usize,
    /// Bytes of those allocations.
    pub allocated: u64,
    /// Bytes of the memory blocks they are carved from, free parts included.
    pub reserved: u64,
}

/// A snapshot of memory in use; `None` where the platform does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    pub device: Option<DeviceMemory>,
    /// Host memory resident in the process (Linux: `VmRSS`).
    pub host_resident: Option<u64>,
}

impl GpuContext {
    /// Device and host memory in use now. Resources dropped since the last submission are
    /// released first, so the figures count only what is still alive.
    pub fn memory_use(&self) -> MemoryUse {
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        let device = self.device.generate_allocator_report().map(|r| DeviceMemory {
            allocations: r.allocations.len(),
            allocated: r.total_allocated_bytes,
            reserved: r.total_reserved_bytes,
        });
        MemoryUse {
            device,
            host_resident: host_resident_bytes(),
        }
    }
}

/// The process's resident set from `/proc/self/status` (Linux); `None` elsewhere.
fn host_resident_bytes() -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl fmt::Display for MemoryUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        match self.device {
            Some(d) => write!(
                f,
                "device {} allocations, {:.1} MiB ({:.1} MiB reserved)",
                d.allocations,
                mib(d.allocated),
                mib(d.reserved)
            )?,
            None => write!(f, "device memory not reported by this backend")?,
        }
        match self.host_resident {
            Some(b) => write!(f, "; host {:.1} MiB resident", mib(b)),
            None => Ok(()),
        }
    }
}
