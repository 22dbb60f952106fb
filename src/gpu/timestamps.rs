//! GPU time of launches from timestamp queries: many launches timed in one submission and one
//! read-back, where the CPU clock would need a round trip to the device per launch (which in
//! a browser costs more than a short launch itself).

use super::{GpuContext, GpuError, Launch};

/// Timestamps one query set holds at most.
const QUERIES_PER_SET: usize = 4096;

/// GPU seconds of each of `timed`, run in order in one submission after `untimed` (in a pass of
/// their own without timestamps: warm-ups that build pipelines, say), each timed launch in a
/// compute pass whose beginning and end write a timestamp. `None` where the adapter has no
/// timestamp queries. A launch too short for the clock's resolution (browsers round to 100 µs)
/// reads 0.
pub async fn launch_times(
    ctx: &GpuContext,
    untimed: &[&Launch],
    timed: &[&Launch],
) -> Result<Option<Vec<f64>>, GpuError> {
    if !ctx.features.timestamp_query {
        return Ok(None);
    }
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("timed launches"),
        });
    if !untimed.is_empty() {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("untimed launches"),
            timestamp_writes: None,
        });
        for launch in untimed {
            launch.record(&mut pass);
        }
    }
    let mut stagings = Vec::new();
    for chunk in timed.chunks(QUERIES_PER_SET / 2) {
        let count = 2 * chunk.len() as u32;
        let size = count as u64 * 8;
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("launch timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolved timestamps"),
            size,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for (i, launch) in chunk.iter().enumerate() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(launch.kernel.name()),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            launch.record(&mut pass);
        }
        encoder.resolve_query_set(&set, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, size);
        stagings.push(staging);
    }
    ctx.queue.submit([encoder.finish()]);
    super::buffer::map_for_reading(ctx, &stagings).await?;
    let period = ctx.queue.get_timestamp_period() as f64 * 1e-9;
    let mut seconds = Vec::with_capacity(timed.len());
    for staging in &stagings {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::ReadBack(e.to_string()))?;
        let ticks: &[u64] = bytemuck::cast_slice(&view);
        // Ticks of a pass's end and beginning; 0 where the clock did not advance (or stepped
        // back, as some adapters' clocks may between passes).
        seconds.extend(ticks.chunks(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period));
    }
    Ok(Some(seconds))
}
