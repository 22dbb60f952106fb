//! Checkpoints as safetensors files: every parameter under its `state_dict` name, the batch
//! norms' `running_mean` and `running_var`, the SGD momentum buffers as `momentum.{name}`, and
//! a JSON header in the file's metadata (key `resnet_wgpu`) with the run's configuration and
//! state (epoch, step, learning-rate schedule, RNG, metrics history).
//!
//! Also loads plain weight files (torchvision's `state_dict` converted to safetensors) into a
//! model for fine-tuning, listing what does not fit. Tensors stored as F16, BF16 or F64 are
//! converted to float32 as they are read, and counted.
//!
//! Every field of a header is range-checked when read (see [`header_check`]).

pub mod header_check;

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::{ModelSpec, TrainConfig, TrainState};
use crate::model::Model;
use crate::schedule::NetworkState;

/// Metadata key of the JSON header.
pub const HEADER_KEY: &str = "resnet_wgpu";
/// Version of the header layout.
pub const FORMAT_VERSION: u32 = 1;

/// What a checkpoint says about its run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub format: u32,
    pub config: TrainConfig,
    pub state: TrainState,
    pub class_names: Vec<String>,
}

/// A saved run: its header and the network's tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    pub network: NetworkState,
}

/// What is wrong with a checkpoint or weight file, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} is not a safetensors file ({reason}); choose a checkpoint this program saved")]
    NotSafetensors { name: String, reason: String },
    #[error(
        "{name} holds weights but no training header: it is not a checkpoint of this program. To \
         start from these weights, pass it as initial weights (train --init) instead"
    )]
    NoHeader { name: String },
    #[error("{name} has a damaged header ({reason}); choose another checkpoint")]
    BadHeader { name: String, reason: String },
    /// A header field out of range: `field` is its path in the header (e.g.
    /// `config.augment.crop_padding`), `rule` what it must be, `remedy` what to do.
    #[error("{name}: {field} is {value}; {rule} — {remedy}")]
    BadField {
        name: String,
        field: String,
        value: String,
        rule: String,
        remedy: &'static str,
    },
    #[error(
        "{name} does not fit {model}:{}{}{} Choose weights of the same variant and stem.",
        list(" missing", missing),
        list(" unexpected", extra),
        list(" wrong shape", misshaped)
    )]
    Mismatch {
        name: String,
        model: String,
        missing: Vec<String>,
        extra: Vec<String>,
        misshaped: Vec<String>,
    },
    #[error(
        "{name}: tensor {tensor} is {dtype}, but only F32, F16, BF16 and F64 are read; convert \
         the weights to float32"
    )]
    Dtype {
        name: String,
        tensor: String,
        dtype: String,
    },
    #[error(
        "{name} is a checkpoint of {found}, but {expected} is selected; select {found} to \
         continue it, or load it with its own settings"
    )]
    OtherModel {
        name: String,
        found: String,
        expected: String,
    },
}

/// " missing (3): a, b, c;" or nothing, for messages (at most 8 names shown).
fn list(label: &str, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
    let more = if names.len() > 8 {
        format!(", … {} more", names.len() - 8)
    } else {
        String::new()
    };
    format!("{label} ({}): {}{more};", names.len(), shown.join(", "))
}

/// A tensor read from a file: shape and f32 values.
type Loaded = (Vec<usize>, Vec<f32>);
/// A file's tensors by name (as f32), its metadata, and how many tensors were converted.
type FileContents = (
    BTreeMap<String, Loaded>,
    Option<HashMap<String, String>>,
    Conversions,
);
/// Parameters, running statistics, and the tensors (by name) that kept fresh values.
type ParamsAndRunning = (Vec<Vec<f32>>, Vec<(Vec<f32>, Vec<f32>)>, Vec<String>);

/// How many tensors of a file were stored in another float type and converted to float32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conversions {
    pub f16: usize,
    pub bf16: usize,
    pub f64: usize,
}

impl Conversions {
    /// Tensors converted in all.
    pub fn total(&self) -> usize {
        self.f16 + self.bf16 + self.f64
    }

    /// "converted 161 tensors from F16 to float32" (with the count of each type where there
    /// were several), or `None` where every tensor was already float32.
    pub fn describe(&self) -> Option<String> {
        let from: Vec<(usize, &str)> = [(self.f16, "F16"), (self.bf16, "BF16"), (self.f64, "F64")]
            .into_iter()
            .filter(|&(n, _)| n > 0)
            .collect();
        let total = self.total();
        let tensors = if total == 1 { "tensor" } else { "tensors" };
        match from.as_slice() {
            [] => None,
            [(_, dtype)] => Some(format!("converted {total} {tensors} from {dtype} to float32")),
            several => {
                let parts: Vec<String> = several.iter().map(|(n, d)| format!("{n} from {d}")).collect();
                Some(format!(
                    "converted {total} {tensors} to float32 ({})",
                    parts.join(", ")
                ))
            }
        }
    }
}

/// The f32 of an IEEE half-precision value's bits (exact: every f16 is an f32).
pub fn f16_to_f32(bits: u16) -> f32 {
    let negative = bits & 0x8000 != 0;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let sign = u32::from(negative) << 31;
    match exponent {
        // Zero or subnormal: mantissa · 2^-24, exact in f32 (10 bits, well within its range).
        0 => {
            let magnitude = mantissa as f32 * f32::from_bits(0x3380_0000); // 2^-24
            if negative { -magnitude } else { magnitude }
        }
        // Infinity (mantissa 0) or NaN (its payload kept in the top mantissa bits).
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        // Normal: rebias the exponent from 15 to 127 and widen the mantissa.
        _ => f32::from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)),
    }
}

/// The f32 of a bfloat16 value's bits (exact: bfloat16 is the top half of an f32).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// A tensor's little-endian values of `dtype` as f32 (F64 rounded to the nearest); `None` for
/// types that are not floating point of 16, 32 or 64 bits.
fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")) as f32)
            .collect(),
        // Integers, booleans, complex numbers and 4-, 6- and 8-bit floats (the enum is open:
        // types added to the format later land here too).
        _ => return None,
    };
    Some(values)
}

/// The tensors of a safetensors file by name as f32 (F16, BF16 and F64 converted), its
/// metadata, and how many were converted.
fn read_tensors(name: &str, bytes: &[u8]) -> Result<FileContents, CheckpointError> {
    let not = |e: safetensors::SafeTensorError| CheckpointError::NotSafetensors {
        name: name.into(),
        reason: e.to_string(),
    };
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(not)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(not)?;
    let mut out = BTreeMap::new();
    let mut converted = Conversions::default();
    for (tensor, view) in tensors.tensors() {
        if tensor.ends_with("num_batches_tracked") {
            continue; // PyTorch's batch counter: not used (momentum is fixed)
        }
        let Some(values) = to_f32(view.dtype(), view.data()) else {
            return Err(CheckpointError::Dtype {
                name: name.into(),
                tensor,
                dtype: format!("{:?}", view.dtype()),
            });
        };
        match view.dtype() {
            Dtype::F16 => converted.f16 += 1,
            Dtype::BF16 => converted.bf16 += 1,
            Dtype::F64 => converted.f64 += 1,
            // F32 needs no conversion; `to_f32` refused every other type above.
            _ => {}
        }
        out.insert(tensor, (view.shape().to_vec(), values));
    }
    Ok((out, metadata.metadata().clone(), converted))
}

/// Every tensor name and shape a model's state holds: parameters, then running statistics.
fn expected_tensors(model: &Model) -> Vec<(String, Vec<usize>)> {
    let mut names: Vec<(String, Vec<usize>)> = model
        .parameters()
        .into_iter()
        .map(|p| (p.name, p.shape))
        .collect();
    for (bn, c) in model.batch_norms() {
        names.push((format!("{bn}.running_mean"), vec![c]));
        names.push((format!("{bn}.running_var"), vec![c]));
    }
    names
}

/// Parameters and running statistics of `model` taken from `tensors`; names the tensors that
/// are missing, extra (beyond `allowed_extra`) or mis-shaped. With `keep_head`, a final linear
/// layer of another shape (another number of classes) keeps `fresh` values instead.
fn take_network(
    name: &str,
    model: &Model,
    tensors: &BTreeMap<String, Loaded>,
    allowed_extra: &dyn Fn(&str) -> bool,
    fresh_head: Option<&[Vec<f32>]>,
) -> Result<ParamsAndRunning, CheckpointError> {
    let expected = expected_tensors(model);
    let head = model.layers.iter().rev().find_map(|l| {
        let crate::model::Op::Linear(linear) = &l.op else {
            return None;
        };
        Some(linear.name.clone())
    });
    let (mut missing, mut misshaped, mut fresh_names) = (Vec::new(), Vec::new(), Vec::new());
    let mut values = Vec::with_capacity(expected.len());
    for (k, (tensor, shape)) in expected.iter().enumerate() {
        match tensors.get(tensor) {
            None => missing.push(tensor.clone()),
            Some((found, v)) if found == shape => values.push(v.clone()),
            Some((found, _)) => {
                let is_head = head
                    .as_ref()
                    .is_some_and(|h| tensor.starts_with(&format!("{h}.")));
                match fresh_head {
                    Some(fresh) if is_head && k < fresh.len() => {
                        values.push(fresh[k].clone());
                        fresh_names.push(tensor.clone());
                    }
                    _ => misshaped.push(format!("{tensor} {found:?}, expected {shape:?}")),
                }
            }
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let extra: Vec<String> = tensors
        .keys()
        .filter(|t| !known.contains(t.as_str()) && !allowed_extra(t))
        .cloned()
        .collect();
    if !(missing.is_empty() && extra.is_empty() && misshaped.is_empty()) {
        return Err(CheckpointError::Mismatch {
            name: name.into(),
            model: format!("{} ({} stem)", model.variant.name(), model.stem.name()),
            missing,
            extra,
            misshaped,
        });
    }
    let params = values.len() - 2 * model.batch_norms().len();
    let running = values[params..]
        .chunks_exact(2)
        .map(|mv| (mv[0].clone(), mv[1].clone()))
        .collect();
    values.truncate(params);
    Ok((values, running, fresh_names))
}

impl Checkpoint {
    pub fn new(
        config: TrainConfig,
        state: TrainState,
        class_names: Vec<String>,
        network: NetworkState,
    ) -> Self {
        Self {
            header: CheckpointHeader {
                format: FORMAT_VERSION,
                config,
                state,
                class_names,
            },
            network,
        }
    }

    pub fn model(&self) -> &ModelSpec {
        &self.header.config.model
    }

    /// The safetensors bytes of the checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        let model = self.model().build();
        let specs = model.parameters();
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for ((spec, p), m) in specs.iter().zip(&self.network.params).zip(&self.network.momentum) {
            data.push((spec.name.clone(), spec.shape.clone(), le(p)));
            data.push((format!("momentum.{}", spec.name), spec.shape.clone(), le(m)));
        }
        for ((bn, c), (mean, var)) in model.batch_norms().iter().zip(&self.network.running) {
            data.push((format!("{bn}.running_mean"), vec![*c], le(mean)));
            data.push((format!("{bn}.running_var"), vec![*c], le(var)));
        }
        let views = data.iter().map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches the data");
            (name.clone(), view)
        });
        let header = serde_json::to_string(&self.header).expect("the header serializes");
        let metadata = HashMap::from([(HEADER_KEY.to_string(), header)]);
        safetensors::serialize(views, Some(metadata)).expect("tensors serialize")
    }

    /// Reads a checkpoint this program saved; `name` is used in messages.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let (tensors, metadata, _) = read_tensors(name, bytes)?;
        let json = metadata
            .and_then(|m| m.get(HEADER_KEY).cloned())
            .ok_or_else(|| CheckpointError::NoHeader { name: name.into() })?;
        let header: CheckpointHeader =
            serde_json::from_str(&json).map_err(|e| CheckpointError::BadHeader {
                name: name.into(),
                reason: e.to_string(),
            })?;
        if header.format != FORMAT_VERSION {
            return Err(CheckpointError::BadHeader {
                name: name.into(),
                reason: format!("format {} (this program reads {FORMAT_VERSION})", header.format),
            });
        }
        // Every field in range before anything is built from them.
        header.check(name)?;
        let model = header.config.model.build();
        let (params, running, _) =
            take_network(name, &model, &tensors, &|t| t.starts_with("momentum."), None)?;
        let mut momentum = Vec::with_capacity(params.len());
        let mut missing = Vec::new();
        for (spec, p) in model.parameters().iter().zip(&params) {
            match tensors.get(&format!("momentum.{}", spec.name)) {
                Some((_, v)) if v.len() == p.len() => momentum.push(v.clone()),
                _ => missing.push(format!("momentum.{}", spec.name)),
            }
        }
        if !missing.is_empty() {
            return Err(CheckpointError::Mismatch {
                name: name.into(),
                model: header.config.model.describe(),
                missing,
                extra: Vec::new(),
                misshaped: Vec::new(),
            });
        }
        Ok(Self {
            header,
            network: NetworkState {
                params,
                momentum,
                running,
            },
        })
    }

    /// Checks that the checkpoint is of `spec` (same variant, stem, shape and classes).
    pub fn check_model(&self, name: &str, spec: &ModelSpec) -> Result<(), CheckpointError> {
        if self.model() == spec {
            return Ok(());
        }
        Err(CheckpointError::OtherModel {
            name: name.into(),
            found: self.model().describe(),
            expected: spec.describe(),
        })
    }

    /// Writes the checkpoint to `path` atomically: a temporary file beside it, flushed to
    /// disk, then renamed over `path`, so a crash never leaves a half-written checkpoint.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, path: &std::path::Path) -> Result<(), CheckpointError> {
        use crate::fs_atomic::PartialFile;
        let io = |e: crate::fs_atomic::WriteError| CheckpointError::Io {
            action: e.action,
            path: e.path.display().to_string(),
            source: e.source,
        };
        // The temporary file is created first: it marks the whole save on disk, serializing
        // included.
        let mut file = PartialFile::create(path).map_err(io)?;
        file.write_all(&self.to_bytes()).map_err(io)?;
        file.commit().map_err(io)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            action: "read",
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&path.display().to_string(), &bytes)
    }
}

/// Weights for a fresh run from a safetensors file of `state_dict` tensors (torchvision's
/// names and layouts, or a checkpoint of this program): parameters and, where the file has
/// them, running statistics. With `fresh_head`, a final linear layer of another number of
/// classes keeps those fresh values (fine-tuning a 1000-class ImageNet model on 10 classes).
pub fn load_weights(
    name: &str,
    bytes: &[u8],
    model: &Model,
    fresh_head: Option<&[Vec<f32>]>,
) -> Result<NetworkState, CheckpointError> {
    load_weights_reporting(name, bytes, model, fresh_head).map(|(state, _)| state)
}

/// What [`load_weights`] took from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsReport {
    /// Tensors (parameters and running statistics) whose values came from the file.
    pub loaded: usize,
    /// Tensors that kept fresh values: the final layer, where the file's has another number
    /// of classes.
    pub fresh: Vec<String>,
    /// Tensors of the file stored as F16, BF16 or F64 and converted to float32.
    pub converted: Conversions,
}

/// [`load_weights`], also saying which tensors loaded and which are new.
pub fn load_weights_reporting(
    name: &str,
    bytes: &[u8],
    model: &Model,
    fresh_head: Option<&[Vec<f32>]>,
) -> Result<(NetworkState, WeightsReport), CheckpointError> {
    let (tensors, _, converted) = read_tensors(name, bytes)?;
    let (params, running, fresh) =
        take_network(name, model, &tensors, &|t| t.starts_with("momentum."), fresh_head)?;
    let momentum = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let report = WeightsReport {
        loaded: expected_tensors(model).len() - fresh.len(),
        fresh,
        converted,
    };
    Ok((
        NetworkState {
            params,
            momentum,
            running,
        },
        report,
    ))
}
