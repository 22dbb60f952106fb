use std::marker::PhantomData;

use super::{GpuContext, GpuError};

/// A storage buffer holding `len` values of `T`, or such a range of a larger buffer (starting
/// `offset` bytes in). Its size is rounded up to whole 16-byte blocks (zero-filled past `len`),
/// so that kernels may read and write it as `vec4`s.
pub struct GpuBuffer<T: bytemuck::Pod> {
    pub buffer: wgpu::Buffer,
    offset: u64,
    len: usize,
    _element: PhantomData<T>,
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
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: Self::byte_size(len),
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Self {
            buffer,
            offset: 0,
            len,
            _element: PhantomData,
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
        if !values.is_empty() {
            ctx.queue
                .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(values));
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
        let offset = self.offset + (start * std::mem::size_of::<T>()) as u64;
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
        Self::byte_size(self.len)
    }

    fn byte_size(len: usize) -> u64 {
        ((len.max(1) * std::mem::size_of::<T>()) as u64).next_multiple_of(VEC4_BYTES)
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
        let mut values = vec![Vec::new(); buffers.len()];
        for ((staging, receiver), (_, members)) in stagings.iter().zip(receivers).zip(&groups) {
            receiver
                .await
                .map_err(|_| GpuError::ReadBack("the device was lost before the copy finished".into()))?
                .map_err(|e| GpuError::ReadBack(e.to_string()))?;
            {
                let view = staging
                    .get_mapped_range(..)
                    .map_err(|e| GpuError::ReadBack(e.to_string()))?;
                for &(i, offset) in members {
                    let bytes = &view[offset as usize..(offset + buffers[i].size_bytes()) as usize];
                    values[i] = bytemuck::cast_slice::<u8, T>(bytes)[..buffers[i].len].to_vec();
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
