use std::marker::PhantomData;

use super::{GpuContext, GpuError};
use crate::shaders::Precision;

/// A storage buffer holding `len` values of `T`, or such a range of a larger buffer (starting
/// `offset` bytes in). Its size is rounded up to whole 16-byte blocks (zero-filled past `len`),
/// so that kernels may read and write it as `vec4`s.
///
/// A buffer of f32 values may store them as f16 (an activation in a half-precision plan): it
/// still has `len` values, reads and writes convert, and the kernels bound to it are compiled
/// for its [`Precision`].
pub struct GpuBuffer<T: bytemuck::Pod> {
    pub buffer: wgpu::Buffer,
    offset: u64,
    len: usize,
    /// `F32`: each value stored as `T` itself; `F16` (only where `T` is f32): as f16.
    precision: Precision,
    _element: PhantomData<T>,
}

impl GpuBuffer<f32> {
    /// A zero-filled buffer of `len` f32 values stored at `precision`.
    pub fn zeros_stored(ctx: &GpuContext, label: &str, len: usize, precision: Precision) -> Self {
        Self::zeros_with(ctx, label, len, precision)
    }
}

/// The one precision of tensors that a kernel binds together (its `act` alias): panics where
/// they differ, as a plan stores every activation at one precision.
pub fn same_precision(buffers: &[&GpuBuffer<f32>]) -> Precision {
    let first = buffers.first().map_or(Precision::F32, |b| b.precision);
    assert!(
        buffers.iter().all(|b| b.precision == first),
        "activations bound together differ in precision"
    );
    first
}

/// Panics unless every buffer stores f32: the gradients and parameters a kernel binds as
/// `array<f32>` whatever the precision of activations.
pub fn assert_f32(buffers: &[&GpuBuffer<f32>]) {
    assert!(
        buffers.iter().all(|b| b.precision == Precision::F32),
        "a gradient or parameter buffer not stored as f32"
    );
}

/// f32 values rounded to the nearest f16 (ties to even), as bit patterns.
pub fn to_f16_bits(values: &[f32]) -> Vec<u16> {
    values.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect()
}

/// f16 bit patterns as f32 values (exact).
pub fn from_f16_bits(bits: &[u16]) -> Vec<f32> {
    bits.iter().map(|&b| half::f16::from_bits(b).to_f32()).collect()
}

/// Where a range of a buffer may start when bound: WebGPU's largest
/// `minStorageBufferOffsetAlignment`, so it holds on every device.
pub const BINDING_ALIGNMENT_BYTES: u64 = 256;

/// Buffer sizes are multiples of a `vec4<f32>`.
const VEC4_BYTES: u64 = 16;

const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl<T: bytemuck::Pod> GpuBuffer<T> {
    /// A zero-filled buffer of `len` elements (at least one, as empty bindings are invalid).
    pub fn zeros(ctx: &GpuContext, label: &str, len: usize) -> Self {
        Self::zeros_with(ctx, label, len, Precision::F32)
    }

    fn zeros_with(ctx: &GpuContext, label: &str, len: usize, precision: Precision) -> Self {
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: Self::byte_size(len, precision),
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Self {
            buffer,
            offset: 0,
            len,
            precision,
            _element: PhantomData,
        }
    }

    /// How its values are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Bytes of one stored value.
    fn value_bytes(&self) -> usize {
        match self.precision {
            Precision::F32 => std::mem::size_of::<T>(),
            Precision::F16 => Precision::F16.bytes(),
        }
    }

    /// A buffer initialised with `values`.
    pub fn from_slice(ctx: &GpuContext, label: &str, values: &[T]) -> Self {
        let this = Self::zeros(ctx, label, values.len());
        this.write(ctx, values);
        this
    }

    /// Replaces the whole contents; `values` must have exactly `len` elements.
    pub fn write(&self, ctx: &GpuContext, values: &[T]) {
        assert_eq!(
            values.len(),
            self.len,
            "write of the wrong length into a GPU buffer"
        );
        if values.is_empty() {
            return;
        }
        match self.precision {
            Precision::F32 => ctx
                .queue
                .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(values)),
            Precision::F16 => {
                let mut halves = to_f16_bits(bytemuck::cast_slice(values));
                // Copies are whole 4-byte words: an odd count writes one zero past the end,
                // into the 16-byte rounding of the buffer's size.
                if halves.len() % 2 == 1 {
                    halves.push(0);
                }
                ctx.queue
                    .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(&halves));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Its first `len` elements, in the same memory: a tensor held in a buffer shared with
    /// longer ones (a recomputed activation in its scratch buffer).
    pub fn prefix(&self, len: usize) -> Self {
        assert!(
            len <= self.len,
            "a prefix of {len} elements of a buffer of {}",
            self.len
        );
        self.range(0, len)
    }

    /// `len` elements from element `start`, in the same memory; `start` must keep the range's
    /// bytes at a multiple of [`BINDING_ALIGNMENT_BYTES`].
    pub fn range(&self, start: usize, len: usize) -> Self {
        let offset = self.offset + (start * self.value_bytes()) as u64;
        assert!(
            start + len <= self.len && offset.is_multiple_of(BINDING_ALIGNMENT_BYTES),
            "elements {start}..{} of a buffer of {} (bound ranges start at multiples of {BINDING_ALIGNMENT_BYTES} bytes)",
            start + len,
            self.len
        );
        Self {
            buffer: self.buffer.clone(),
            offset,
            len,
            precision: self.precision,
            _element: PhantomData,
        }
    }

    /// The binding of its range.
    pub fn bind(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.size_bytes()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn size_bytes(&self) -> u64 {
        Self::byte_size(self.len, self.precision)
    }

    fn byte_size(len: usize, precision: Precision) -> u64 {
        let value = match precision {
            Precision::F32 => std::mem::size_of::<T>(),
            Precision::F16 => Precision::F16.bytes(),
        };
        ((len.max(1) * value) as u64).next_multiple_of(VEC4_BYTES)
    }

    /// Copies the buffer back to the CPU. Works natively and in the browser: the map callback
    /// sends on a channel, and the caller awaits it.
    pub async fn read(&self, ctx: &GpuContext) -> Result<Vec<T>, GpuError> {
        let mut values = Self::read_all(ctx, &[self]).await?;
        Ok(values.pop().expect("one buffer read"))
    }

    /// Copies several buffers back to the CPU with one submission and one wait (in a browser a
    /// read-back's round trip costs far more than its bytes). The copies are packed into
    /// staging buffers of at most the device's largest buffer.
    pub async fn read_all(ctx: &GpuContext, buffers: &[&GpuBuffer<T>]) -> Result<Vec<Vec<T>>, GpuError> {
        if buffers.is_empty() {
            return Ok(Vec::new());
        }
        // Per staging buffer: its size, and (buffer index, byte offset) of each copy in it.
        let mut groups: Vec<(u64, Vec<(usize, u64)>)> = Vec::new();
        for (i, buffer) in buffers.iter().enumerate() {
            let size = buffer.size_bytes();
            match groups.last_mut() {
                Some((total, members)) if *total + size <= ctx.limits.max_buffer_size => {
                    members.push((i, *total));
                    *total += size;
                }
                _ => groups.push((size, vec![(i, 0)])),
            }
        }
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read-back copy"),
            });
        let stagings: Vec<wgpu::Buffer> = groups
            .iter()
            .map(|(total, members)| {
                let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back staging"),
                    size: *total,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                for &(i, offset) in members {
                    let source = buffers[i];
                    encoder.copy_buffer_to_buffer(
                        &source.buffer,
                        source.offset,
                        &staging,
                        offset,
                        source.size_bytes(),
                    );
                }
                staging
            })
            .collect();
        ctx.queue.submit([encoder.finish()]);
        map_for_reading(ctx, &stagings).await?;
        let mut values = vec![Vec::new(); buffers.len()];
        for (staging, (_, members)) in stagings.iter().zip(&groups) {
            {
                let view = staging
                    .get_mapped_range(..)
                    .map_err(|e| GpuError::ReadBack(e.to_string()))?;
                for &(i, offset) in members {
                    let bytes = &view[offset as usize..(offset + buffers[i].size_bytes()) as usize];
                    let len = buffers[i].len;
                    values[i] = match buffers[i].precision {
                        Precision::F32 => bytemuck::cast_slice::<u8, T>(bytes)[..len].to_vec(),
                        Precision::F16 => {
                            let floats = from_f16_bits(&bytemuck::cast_slice::<u8, u16>(bytes)[..len]);
                            bytemuck::cast_slice::<f32, T>(&floats).to_vec()
                        }
                    };
                }
            }
            staging.unmap();
        }
        Ok(values)
    }

    /// Blocking form of [`GpuBuffer::read`] for native programs and tests. Panics where the
    /// read-back failed or the device reported an error since it was last checked: a launch it
    /// rejected leaves its output as it was, which a comparison might not notice.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_blocking(&self, ctx: &GpuContext) -> Vec<T> {
        let values = pollster::block_on(self.read(ctx)).expect("GPU read-back failed");
        if let Some(error) = ctx.take_error() {
            panic!("the device reported an error before this read-back: {error}");
        }
        values
    }
}

/// Maps `stagings` for reading once the work submitted so far has copied into them (natively
/// by polling, in the browser by awaiting the device), all requested at once.
pub(super) async fn map_for_reading(ctx: &GpuContext, stagings: &[wgpu::Buffer]) -> Result<(), GpuError> {
    let receivers: Vec<_> = stagings
        .iter()
        .map(|staging| {
            let (sender, receiver) = futures_channel::oneshot::channel();
            staging.map_async(wgpu::MapMode::Read, .., move |result| {
                let _ = sender.send(result);
            });
            receiver
        })
        .collect();
    #[cfg(not(target_arch = "wasm32"))]
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::ReadBack(e.to_string()))?;
    #[cfg(target_arch = "wasm32")]
    let _ = ctx; // the browser maps as the device finishes, without polling
    for receiver in receivers {
        receiver
            .await
            .map_err(|_| GpuError::ReadBack("the device was lost before the copy finished".into()))?
            .map_err(|e| GpuError::ReadBack(e.to_string()))?;
    }
    Ok(())
}
