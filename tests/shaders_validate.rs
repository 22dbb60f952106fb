//! Every WGSL prelude validates on its own (after the preludes it builds on), every kernel
//! validates joined with its preludes and body exactly as the device receives it, and every
//! kernel's parameter struct matches its Rust twin (field names, offsets, size) through naga's
//! reflection. No adapter needed.

use resnet_wgpu::ops::batch_norm::BatchNormParams;
use resnet_wgpu::ops::conv2d::Conv2dParams;
use resnet_wgpu::ops::matmul::MatmulParams;
use resnet_wgpu::ops::split_k::SplitKSumParams;
use resnet_wgpu::ops::{
    add::AddParams, bias_grad::BiasGradParams, cross_entropy::CrossEntropyParams,
    finite_check::FiniteCheckParams, global_avg_pool::GlobalAvgPoolParams, max_pool::MaxPoolParams,
    relu::LenParams, sgd::SgdParams, sum_of_squares::SumOfSquaresParams, upsample::UpsampleParams,
};
use resnet_wgpu::shaders::{Body, ELEMENT_ALIASES, Kernel, Precision, Prelude};

/// Parses and validates WGSL text (with subgroup operations and f16 allowed where asked): the
/// module and what validation found of it.
fn validate(
    name: &str,
    text: &str,
    subgroups: bool,
) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module =
        naga::front::wgsl::parse_str(text).map_err(|e| format!("{name}: {}", e.emit_to_string(text)))?;
    let mut capabilities = naga::valid::Capabilities::empty();
    if subgroups {
        capabilities |= naga::valid::Capabilities::SUBGROUP;
    }
    if text.starts_with("enable f16;") {
        capabilities |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
    if subgroups {
        validator.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
        validator.subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    let info = validator
        .validate(&module)
        .map_err(|e| format!("{name}: {}", e.emit_to_string(text)))?;
    Ok((module, info))
}

/// Sets a validated module's overrides as its kernel's pipeline does (the widest subgroups a
/// device may have, 64 lanes, for a wide kernel) and validates the result: every override
/// expression evaluates, and the workgroup sizes and loops it shapes are valid.
fn specialize(module: &naga::Module, info: &naga::valid::ModuleInfo, kernel: Kernel) -> Result<(), String> {
    let constants: naga::back::PipelineConstants = kernel
        .overrides()
        .constants(64)
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    for name in constants.keys() {
        if !module
            .overrides
            .iter()
            .any(|(_, o)| o.name.as_deref() == Some(name))
        {
            return Err(format!("sets `{name}`, which its text does not declare"));
        }
    }
    naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, "main")),
        &constants,
    )
    .map(|_| ())
    .map_err(|e| format!("with its overrides {constants:?}: {e}"))
}

#[test]
fn every_prelude_validates_after_what_it_needs() {
    let failures: Vec<String> = Prelude::ALL
        .iter()
        .filter_map(|p| {
            let mut text: String = ELEMENT_ALIASES
                .iter()
                .map(|a| format!("alias {a} = f32;\n"))
                .collect();
            text.extend(p.needs.iter().map(|n| format!("{}\n", n.source)));
            text.push_str(p.source);
            validate(p.name, &text, false).err()
        })
        .collect();
    assert!(failures.is_empty(), "invalid preludes:\n{}", failures.join("\n"));
}

#[test]
fn every_kernel_names_what_its_preludes_need_before_them() {
    for &kernel in Kernel::ALL {
        let preludes = kernel.preludes();
        for (at, prelude) in preludes.iter().enumerate() {
            for need in prelude.needs {
                assert!(
                    preludes[..at].contains(need),
                    "{}: {} needs {} before it",
                    kernel.name(),
                    prelude.name,
                    need.name
                );
            }
        }
    }
}

#[test]
fn every_kernel_validates_as_the_device_receives_it() {
    let mut failures = Vec::new();
    for &kernel in Kernel::ALL {
        for alias in kernel.aliases() {
            assert!(
                ELEMENT_ALIASES.contains(alias),
                "{}: unknown alias {alias}",
                kernel.name()
            );
        }
        // At every precision of its tensors: f32 throughout, f16 activations, and (for the
        // GEMM kernels) each mix of f32 and f16 operands.
        for shader in kernel.every_shader() {
            let name = shader.label();
            // The native text; the browser's differs only by `enable subgroups;`, which naga
            // does not parse.
            let text = shader.joined_source(false);
            let browser = shader.joined_source(true);
            assert_eq!(
                browser.replacen("enable subgroups;\n", "", 1),
                text,
                "{name}: the browser's text differs by more than its `enable subgroups;`"
            );
            match validate(&name, &text, kernel.uses_subgroups()) {
                Ok((module, info)) => {
                    if let Err(e) = specialize(&module, &info, kernel) {
                        failures.push(format!("{name}: {e}"));
                    }
                    if !module.entry_points.iter().any(|ep| ep.name == "main") {
                        failures.push(format!("{name}: no `main` entry point"));
                    }
                }
                Err(e) => failures.push(e),
            }
            if kernel.uses_subgroups() {
                assert!(
                    browser
                        .lines()
                        .take_while(|line| line.starts_with("enable "))
                        .any(|line| line == "enable subgroups;"),
                    "{name}: the browser needs the subgroups extension enabled"
                );
            }
            assert_eq!(
                text.starts_with("enable f16;\n"),
                shader.precisions().contains(&Precision::F16),
                "{name}: `enable f16;` exactly where a tensor is f16"
            );
        }
    }
    assert!(failures.is_empty(), "invalid shaders:\n{}", failures.join("\n"));
}

#[test]
fn every_shader_file_is_in_the_table() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).expect("shaders/ exists") {
        let path = entry.expect("readable entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        assert!(
            Kernel::ALL.iter().any(|k| k.file() == stem)
                || Prelude::ALL.iter().any(|p| p.name == stem)
                || Body::ALL.iter().any(|b| b.name == stem),
            "{} is not listed in src/shaders.rs",
            path.display()
        );
    }
}

/// A Rust parameter struct: its size and its named fields with their offsets (padding fields,
/// whose names start with `_`, are left out on both sides).
struct RustTwin {
    name: &'static str,
    size: usize,
    fields: Vec<(&'static str, usize)>,
}

macro_rules! twin {
    ($t:ty { $($field:ident),* $(,)? }) => {
        RustTwin {
            name: stringify!($t),
            size: std::mem::size_of::<$t>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($t, $field))),*],
        }
    };
}

fn twin_of(kernel: Kernel) -> RustTwin {
    use Kernel::*;
    match kernel {
        Conv2dForward
        | Conv2dForwardSubgroup
        | Conv2dForwardSubgroupWide
        | Conv2dForwardTiled
        | Conv2dForwardTiled64
        | Conv2dForwardNarrow
        | Conv2dInputGrad
        | Conv2dInputGradSubgroup
        | Conv2dInputGradSubgroupWide
        | Conv2dInputGradTiled
        | Conv2dInputGradTiled64
        | Conv2dInputGradNarrow
        | Conv2dWeightGrad
        | Conv2dWeightGradSubgroup
        | Conv2dWeightGradSubgroupWide
        | Conv2dWeightGradTiled
        | Conv2dWeightGradTiled64 => twin!(Conv2dParams {
            batch,
            in_channels,
            in_height,
            in_width,
            out_channels,
            out_height,
            out_width,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            has_bias,
            accumulate,
            k_chunk,
            live_h_start,
            live_h_end,
            live_w_start,
            live_w_end,
            quads
        }),
        SplitKSum => twin!(SplitKSumParams {
            len,
            chunks,
            accumulate
        }),
        Matmul | MatmulSubgroup | MatmulSubgroupWide | MatmulTiled | MatmulTiled64 | MatmulNarrow => {
            twin!(MatmulParams {
                m,
                n,
                k,
                batch,
                a_batch,
                a_row,
                a_k,
                b_batch,
                b_k,
                b_col,
                c_batch,
                c_row,
                bias_mode,
                accumulate,
                reduce_batch,
                z_chunk,
                a_quads,
                b_quads
            })
        }
        BiasGrad => twin!(BiasGradParams {
            batch,
            channels,
            spatial,
            accumulate,
            parts,
            part_len,
            phase,
            pad
        }),
        BatchNormTrainForward
        | BatchNormInferenceForward
        | BatchNormBackward
        | BatchNormRunningUpdate
        | BatchNormAddReluTrainForward
        | BatchNormAddReluInferenceForward
        | BatchNormAddReluBackward => {
            twin!(BatchNormParams {
                batch,
                channels,
                spatial,
                momentum,
                eps,
                accumulate,
                relu,
                lanes,
                step_stats,
                parts,
                phase,
                part_len
            })
        }
        ReluForward | ReluBackward => twin!(LenParams { len }),
        Add => twin!(AddParams { len }),
        MaxPoolForward | MaxPoolBackward => twin!(MaxPoolParams {
            planes,
            in_h,
            in_w,
            out_h,
            out_w,
            kernel,
            stride,
            pad
        }),
        GlobalAvgPoolForward | GlobalAvgPoolBackward => twin!(GlobalAvgPoolParams { planes, hw }),
        UpsampleNearestForward | UpsampleNearestBackward => twin!(UpsampleParams {
            planes,
            in_h,
            in_w,
            out_h,
            out_w
        }),
        CrossEntropyForward | CrossEntropyBackward => twin!(CrossEntropyParams {
            batch,
            classes,
            divisor
        }),
        SgdUpdate => twin!(SgdParams {
            len,
            lr,
            momentum,
            weight_decay
        }),
        SumOfSquares => twin!(SumOfSquaresParams { len, slot, partials }),
        FiniteCheck => twin!(FiniteCheckParams { len, flag }),
    }
}

#[test]
fn every_parameter_struct_matches_its_rust_twin() {
    let mut failures = Vec::new();
    for &kernel in Kernel::ALL {
        let text = kernel
            .stored(&vec![Precision::F32; kernel.aliases().len()])
            .joined_source(false);
        let (module, _) = validate(kernel.name(), &text, kernel.uses_subgroups()).expect("valid kernel");
        let uniform = module
            .global_variables
            .iter()
            .find(|(_, v)| v.space == naga::AddressSpace::Uniform)
            .map(|(_, v)| v.ty)
            .unwrap_or_else(|| panic!("{}: no uniform parameter struct", kernel.name()));
        let naga::TypeInner::Struct { members, span } = &module.types[uniform].inner else {
            panic!("{}: the uniform is not a struct", kernel.name());
        };
        let wgsl: Vec<(String, usize)> = members
            .iter()
            .filter_map(|m| {
                let name = m.name.clone().unwrap_or_default();
                (!name.starts_with('_')).then_some((name, m.offset as usize))
            })
            .collect();
        let twin = twin_of(kernel);
        let rust: Vec<(String, usize)> = twin.fields.iter().map(|(n, o)| (n.to_string(), *o)).collect();
        if wgsl != rust || *span as usize != twin.size {
            failures.push(format!(
                "{} ({} bytes) vs {} ({} bytes):\n  wgsl {wgsl:?}\n  rust {rust:?}",
                kernel.name(),
                span,
                twin.name,
                twin.size
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "parameter structs differ:\n{}",
        failures.join("\n")
    );
}
