use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::GpuBuffer;
use super::choice::Variant;
use crate::shaders::Shader;

/// Why the GPU could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter was found ({0}). Install a WebGPU-capable driver: on Debian or Ubuntu \
         without a GPU, `apt-get install mesa-vulkan-drivers` provides lavapipe, a Vulkan \
         driver that runs on the CPU; in a browser, use a recent Chrome or Edge with WebGPU"
    )]
    NoAdapter(String),
    #[error(
        "the adapter '{0}' cannot run compute shaders (it offers {1} storage buffers per \
         shader stage; 8 are needed). Use a Vulkan, Metal, DX12 or WebGPU adapter"
    )]
    NoCompute(String, u32),
    #[error("the adapter '{adapter}' refused to open a device: {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error("reading a buffer back from the GPU failed: {0}")]
    ReadBack(String),
    #[error("the GPU reported an error: {0}")]
    Validation(String),
}

/// A place where the device's errors are checked, named so that a test can make the device
/// report a real error exactly there ([`GpuContext::arm_fault`]) and see what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// After a training step's launches (also the steps an estimate times).
    Step,
    /// After an inference pass (evaluation, classification without a map).
    Predict,
    /// After copying the network's state off the device (checkpoints, the kept run).
    StateCopy,
    /// After reading the per-layer norms.
    LayerNorms,
    /// After a classification with its heat map.
    GradCam,
    /// While timing kernels, outside any one candidate.
    KernelTiming,
    /// Inside the timing of one candidate variant: the device rejects it.
    Candidate(Variant),
}

/// Optional adapter features that kernels may take advantage of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionalFeatures {
    pub shader_f16: bool,
    /// Subgroup operations in compute shaders, with a subgroup of at least 8 lanes.
    pub subgroups: bool,
    pub timestamp_query: bool,
}

/// Invocations per workgroup of the wide subgroup kernels on an adapter whose largest subgroup
/// is `subgroup_max_size` lanes: that size, at least 16 and at most 64 (a whole number of
/// subgroups of any size it runs).
pub fn wide_lanes(subgroup_max_size: u32) -> u32 {
    subgroup_max_size.next_power_of_two().clamp(16, 64)
}

/// An open device with its queue, what the adapter is, and the pipelines built so far.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: OptionalFeatures,
    /// Invocations per workgroup of the wide subgroup kernels ([`wide_lanes`]).
    pub wide_lanes: u32,
    /// Bytes that a network's buffers may take in all (see [`GpuContext::memory_budget`]).
    memory_budget: std::sync::atomic::AtomicU64,
    /// Scratch space shared by split-K launches (each launch's partial sums are consumed by
    /// its own second dispatch before the next launch writes): the largest asked for so far.
    scratch: Mutex<Option<Arc<GpuBuffer<f32>>>>,
    pipelines: Mutex<HashMap<Shader, Arc<wgpu::ComputePipeline>>>,
    /// A small read-only storage buffer bound where an optional input (a bias) is absent.
    placeholder: wgpu::Buffer,
    /// The first error the device reported on its own (validation, out of memory, device
    /// lost) since it was last taken; wgpu would otherwise panic on it.
    error: Arc<Mutex<Option<String>>>,
    /// Set once the device is lost (destroyed, reset by the driver, unplugged).
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// Where the device is made to report an error next (tests of the failure paths).
    armed_fault: Mutex<Option<Fault>>,
}

/// The memory budget of a device of this type, in bytes: 6 GiB on a discrete GPU (the
/// reference configuration then starts on an 8 GiB card, leaving room for the display and the
/// driver), 4 GiB on a CPU adapter (host memory), 2 GiB on integrated and other GPUs (shared
/// with the system) and in browsers, which stop pages long before a device's memory runs out.
pub fn default_memory_budget(device_type: wgpu::DeviceType) -> u64 {
    const GIB: u64 = 1 << 30;
    if cfg!(target_arch = "wasm32") {
        return 2 * GIB;
    }
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 6 * GIB,
        wgpu::DeviceType::Cpu => 4 * GIB,
        _ => 2 * GIB,
    }
}

/// An error and its causes, `outer: inner: …`, on one line.
/// What a device error says, with its cause (the error's own text is only its kind).
pub fn describe_error(error: &wgpu::Error) -> String {
    match error {
        wgpu::Error::OutOfMemory { .. } => "the device is out of memory".to_string(),
        wgpu::Error::Validation { source, .. } | wgpu::Error::Internal { source, .. } => {
            error_chain(source.as_ref())
        }
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The smallest subgroup the subgroup kernels work with: they exchange operands among groups
/// of 8 neighbouring lanes.
const MIN_SUBGROUP_SIZE_FOR_KERNELS: u32 = 8;

impl GpuContext {
    /// Opens the highest-performance adapter on any backend, asking for its largest buffer
    /// and workgroup limits and for the optional features it offers.
    pub async fn new() -> Result<Self, GpuError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if cfg!(target_arch = "wasm32") {
            // In the browser only WebGPU computes (WebGL has no compute shaders).
            descriptor.backends = wgpu::Backends::BROWSER_WEBGPU;
        }
        let instance = wgpu::Instance::new(descriptor);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        Self::from_adapter(&adapter).await
    }

    /// Blocking form of [`GpuContext::new`] for native programs and tests.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self, GpuError> {
        pollster::block_on(Self::new())
    }

    /// Opens a device on a given adapter (the app passes the one its window renders with).
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let supported = adapter.limits();
        if supported.max_storage_buffers_per_shader_stage < 8 {
            return Err(GpuError::NoCompute(
                info.name.clone(),
                supported.max_storage_buffers_per_shader_stage,
            ));
        }
        let offered = adapter.features();
        let mut wanted = wgpu::Features::empty();
        for feature in [
            wgpu::Features::SHADER_F16,
            wgpu::Features::SUBGROUP,
            wgpu::Features::TIMESTAMP_QUERY,
        ] {
            if offered.contains(feature) {
                wanted |= feature;
            }
        }
        let features = OptionalFeatures {
            shader_f16: offered.contains(wgpu::Features::SHADER_F16),
            subgroups: offered.contains(wgpu::Features::SUBGROUP)
                && info.subgroup_min_size >= MIN_SUBGROUP_SIZE_FOR_KERNELS,
            timestamp_query: offered.contains(wgpu::Features::TIMESTAMP_QUERY),
        };
        // The adapter's own limits: the largest buffers and workgroups it offers.
        let limits = supported;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("resnet-wgpu device"),
                required_features: wanted,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        log::info!(
            "GPU: {} ({:?}, {:?}), subgroups {} ({} to {} lanes)",
            info.name,
            info.backend,
            info.device_type,
            features.subgroups,
            info.subgroup_min_size,
            info.subgroup_max_size
        );
        let error = Arc::new(Mutex::new(None));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let text = describe_error(&e);
            log::error!("GPU error: {text}");
            sink.lock().expect("error slot").get_or_insert(text);
        }));
        let sink = error.clone();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            lost_flag.store(true, std::sync::atomic::Ordering::SeqCst);
            let text = match message.trim() {
                "" => format!("the GPU device was lost ({reason:?})"),
                message => format!("the GPU device was lost ({reason:?}): {message}"),
            };
            // The root cause of whatever else failed since: it replaces an earlier error.
            *sink.lock().expect("error slot") = Some(text);
        });
        let placeholder = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("absent optional input"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let wide_lanes = wide_lanes(info.subgroup_max_size);
        let memory_budget = default_memory_budget(info.device_type).into();
        Ok(Self {
            memory_budget,
            wide_lanes,
            placeholder,
            device,
            queue,
            adapter_info: info,
            limits,
            scratch: Mutex::new(None),
            features,
            pipelines: Mutex::new(HashMap::new()),
            error,
            lost,
            armed_fault: Mutex::new(None),
        })
    }

    /// The first error the device reported since the last call (out of memory, validation,
    /// device lost), if any.
    pub fn take_error(&self) -> Option<String> {
        self.error.lock().expect("error slot").take()
    }

    /// Whether the device is lost: nothing runs on it again; a new one must be opened.
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `Err` with the device's first error since the last check (a rejected launch, memory it
    /// could not allocate, a lost device): after such an error, results read back are stale.
    pub fn check(&self) -> Result<(), GpuError> {
        self.take_error().map_or(Ok(()), |e| Err(GpuError::Validation(e)))
    }

    /// [`GpuContext::check`] at a named place: where a test armed that place, the device is
    /// first made to report a real validation error.
    pub fn check_at(&self, at: Fault) -> Result<(), GpuError> {
        self.fault_point(at);
        self.check()
    }

    /// Makes the device report a real validation error the next time the code reaches `at`
    /// (for tests of what follows a device error on a device that is still alive).
    pub fn arm_fault(&self, at: Fault) {
        *self.armed_fault.lock().expect("armed fault") = Some(at);
    }

    /// Where `at` is armed, disarms it and makes the device report a validation error (a
    /// buffer with usages WebGPU forbids together), through an open error scope if there is
    /// one, else to the error slot.
    pub fn fault_point(&self, at: Fault) {
        let mut armed = self.armed_fault.lock().expect("armed fault");
        if *armed != Some(at) {
            return;
        }
        *armed = None;
        drop(armed);
        log::warn!("making the device report an error at {at:?}");
        let _refused = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("a buffer the device must refuse ({at:?})")),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
    }

    /// Whether the wide subgroup kernels are worth timing: where the adapter's subgroups are
    /// wider than 8 lanes (the 8-lane workgroup leaves lanes idle there). On 8-lane subgroups
    /// they are the 8-lane kernels with more bookkeeping: measured on lavapipe (AVX2), 5.2
    /// against 5.5 images/s for the 32-pixel ResNet-50 step, and 2 s more of kernel timing for
    /// no faster choice; they run there only when asked for by name.
    pub fn wide_worth_timing(&self) -> bool {
        self.adapter_info.subgroup_max_size > 8
    }

    /// The most values one invocation of a GEMM-shaped kernel may sum on this adapter:
    /// [`MAX_REDUCTION`](super::MAX_REDUCTION) on a CPU adapter (llvmpipe ends every loop of
    /// an invocation after 65,535 iterations in all, without an error; SwiftShader is assumed
    /// alike), unbounded (`None`) elsewhere, where long reductions run whole or split by
    /// measurement.
    pub fn reduction_bound(&self) -> Option<usize> {
        (self.adapter_info.device_type == wgpu::DeviceType::Cpu).then_some(super::MAX_REDUCTION)
    }

    /// Whether the tiled (128×128, GPU-class) convolution kernels are worth timing: on GPUs,
    /// not on CPU adapters, where each invocation's 8×8 block and the staging in workgroup
    /// memory do not pay. Measured on lavapipe (AVX-512): no ResNet-50 layer shape, in any
    /// direction, runs fastest on them, and the tiled GEMM reaches about 0.6× the subgroup GEMM's
    /// rate; they run there only when asked for by name.
    pub fn tiled_convolutions_worth_timing(&self) -> bool {
        self.adapter_info.device_type != wgpu::DeviceType::Cpu
    }

    /// Bytes that a network's buffers may take in all: a plan runs its batch as micro-batches
    /// small enough to fit. WebGPU does not say how much memory a device has, so this is a
    /// default per kind of adapter ([`default_memory_budget`]) that a person may change
    /// (`--memory`, the app's Device page).
    pub fn memory_budget(&self) -> u64 {
        self.memory_budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_memory_budget(&self, bytes: u64) {
        self.memory_budget
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the adapter has the operations `variant` needs (subgroups for the subgroup
    /// variants).
    pub fn runs(&self, variant: Variant) -> bool {
        !variant.uses_subgroups() || self.features.subgroups
    }

    /// The variants of a GEMM-shaped launch that run on this adapter, from `all` (given in
    /// order of preference when nothing was measured): subgroup variants need subgroups.
    pub fn applicable(&self, all: &[Variant]) -> Vec<Variant> {
        let mut out: Vec<Variant> = all.iter().copied().filter(|&v| self.runs(v)).collect();
        // Without a measurement, subgroup kernels go first where the adapter has them.
        out.sort_by_key(|&v| v != Variant::Subgroup);
        out
    }

    /// A scratch buffer of at least `len` floats, shared by every launch that asks while it is
    /// the largest so far.
    pub fn scratch(&self, len: usize) -> Arc<GpuBuffer<f32>> {
        let mut slot = self.scratch.lock().expect("scratch slot");
        match &*slot {
            Some(buffer) if buffer.len() >= len => buffer.clone(),
            _ => {
                let buffer = Arc::new(GpuBuffer::zeros(self, "split-k partial sums", len));
                *slot = Some(buffer.clone());
                buffer
            }
        }
    }

    /// The buffer to bind for an absent optional input; kernels told so never read it.
    pub fn placeholder(&self) -> &wgpu::Buffer {
        &self.placeholder
    }

    /// The compute pipeline of a kernel at its tensors' precisions, built on first use and
    /// cached afterwards.
    pub fn pipeline(&self, shader: Shader) -> Arc<wgpu::ComputePipeline> {
        let kernel = shader.kernel;
        let label = shader.label();
        let mut cache = self.pipelines.lock().expect("pipeline cache poisoned");
        cache
            .entry(shader)
            .or_insert_with(|| {
                let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(shader.source_for_device().into()),
                });
                let constants = kernel.overrides().constants(self.wide_lanes);
                Arc::new(
                    self.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(&label),
                            layout: None,
                            module: &module,
                            entry_point: Some("main"),
                            compilation_options: wgpu::PipelineCompilationOptions {
                                constants: &constants,
                                ..Default::default()
                            },
                            cache: None,
                        }),
                )
            })
            .clone()
    }

    /// Drops a kernel's cached pipeline (one the device rejected), so that the next use
    /// builds it anew.
    pub fn forget_pipeline(&self, shader: Shader) {
        self.pipelines
            .lock()
            .expect("pipeline cache poisoned")
            .remove(&shader);
    }

    /// A one-line description of the adapter: name, backend and type.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?} backend, {:?}, driver {} {})",
            self.adapter_info.name,
            self.adapter_info.backend,
            self.adapter_info.device_type,
            self.adapter_info.driver,
            self.adapter_info.driver_info
        )
    }

    /// Records the launches into one compute pass and submits them.
    pub fn submit(&self, label: &str, launches: &[&Launch]) -> wgpu::SubmissionIndex {
        self.submit_all(label, launches.iter().copied())
    }

    /// [`GpuContext::submit`] for launches held in several lists, without collecting them.
    pub fn submit_all<'a>(
        &self,
        label: &str,
        launches: impl IntoIterator<Item = &'a Launch>,
    ) -> wgpu::SubmissionIndex {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            for launch in launches {
                launch.record(&mut pass);
            }
        }
        self.queue.submit([encoder.finish()])
    }

    /// Waits until the GPU has finished everything submitted so far (natively by polling,
    /// in the browser by awaiting the queue's callback).
    pub async fn finish(&self) -> Result<(), GpuError> {
        let (sender, receiver) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = sender.send(());
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::ReadBack(e.to_string()))?;
        receiver
            .await
            .map_err(|_| GpuError::ReadBack("the device was lost while waiting".into()))
    }

    /// Submits the launches and waits until the GPU has finished them (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_blocking(&self, label: &str, launches: &[&Launch]) {
        let index = self.submit(label, launches);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .expect("waiting for the GPU failed");
    }
}

use super::Launch;
