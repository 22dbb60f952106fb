//! The table of every WGSL kernel: one file per operation and direction, loaded once here.
//!
//! Declarations that several kernels share (a parameter struct, bindings, load and store
//! helpers) live in prelude files, `shaders/prelude_*.wgsl`, each valid WGSL on its own. A
//! kernel names its preludes here, and the loader joins them before the kernel's own text.

/// A file of shared declarations, joined before the kernels that name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prelude {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! prelude {
    ($name:ident, $file:literal) => {
        pub const $name: Prelude = Prelude {
            name: $file,
            source: include_str!(concat!("../shaders/", $file, ".wgsl")),
        };
    };
}

prelude!(CONV2D, "prelude_conv2d");
prelude!(MATMUL, "prelude_matmul");
prelude!(BATCH_NORM, "prelude_batch_norm");

impl Prelude {
    pub const ALL: &'static [Prelude] = &[CONV2D, MATMUL, BATCH_NORM];
}

/// Declares the `Kernel` enum and its source table from
/// `(Variant, "file stem", subgroups, [preludes])`, or `(…, wide)` for a kernel that runs a
/// file's text with its `LANES` override set to the device's subgroup width
/// ([`crate::gpu::GpuContext::wide_lanes`]); such a kernel's name is the file stem + `_wide`.
macro_rules! kernels {
    ($(($variant:ident, $file:literal, $subgroups:literal, [$($prelude:ident),*] $(, $wide:ident)?)),* $(,)?) => {
        /// A compute kernel: one `.wgsl` file in `shaders/` with a `main` entry point.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $($variant),* }

        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];

            /// The file stem (`_wide` added for a wide kernel), also the label of the kernel's
            /// wgpu objects.
            pub const fn name(self) -> &'static str {
                match self { $(Kernel::$variant => concat!($file $(, "_", stringify!($wide))?)),* }
            }

            /// Whether the kernel sets its `LANES` override to the device's subgroup width.
            pub const fn is_wide(self) -> bool {
                match self { $(Kernel::$variant => false $(|| stringify!($wide).len() > 0)?),* }
            }

            /// The kernel's own WGSL text exactly as it is on disk (without its preludes).
            pub const fn source(self) -> &'static str {
                match self { $(Kernel::$variant => include_str!(concat!("../shaders/", $file, ".wgsl"))),* }
            }

            /// The preludes joined before the kernel's text, in order.
            pub const fn preludes(self) -> &'static [Prelude] {
                match self { $(Kernel::$variant => &[$($prelude),*]),* }
            }

            /// Whether the kernel uses subgroup operations (and so needs `Features::SUBGROUP`).
            pub const fn uses_subgroups(self) -> bool {
                match self { $(Kernel::$variant => $subgroups),* }
            }
        }
    };
}

kernels! {
    (Conv2dForward, "conv2d_forward", false, [CONV2D]),
    (Conv2dForwardSubgroup, "conv2d_forward_subgroup", true, [CONV2D]),
    (Conv2dForwardSubgroupWide, "conv2d_forward_subgroup", true, [CONV2D], wide),
    (Conv2dInputGrad, "conv2d_input_grad", false, [CONV2D]),
    (Conv2dInputGradSubgroup, "conv2d_input_grad_subgroup", true, [CONV2D]),
    (Conv2dInputGradSubgroupWide, "conv2d_input_grad_subgroup", true, [CONV2D], wide),
    (Conv2dWeightGrad, "conv2d_weight_grad", false, [CONV2D]),
    (Conv2dWeightGradSubgroup, "conv2d_weight_grad_subgroup", true, [CONV2D]),
    (Conv2dWeightGradSubgroupWide, "conv2d_weight_grad_subgroup", true, [CONV2D], wide),
    (Conv2dWeightGradSplit, "conv2d_weight_grad_split", false, [CONV2D]),
    (SplitKSum, "split_k_sum", false, []),
    (Matmul, "matmul", false, [MATMUL]),
    (MatmulSubgroup, "matmul_subgroup", true, [MATMUL]),
    (MatmulSubgroupWide, "matmul_subgroup", true, [MATMUL], wide),
    (MatmulTiled, "matmul_tiled", false, [MATMUL]),
    (BiasGrad, "bias_grad", false, []),
    (BatchNormTrainForward, "batch_norm_train_forward", false, [BATCH_NORM]),
    (BatchNormInferenceForward, "batch_norm_inference_forward", false, [BATCH_NORM]),
    (BatchNormBackward, "batch_norm_backward", false, [BATCH_NORM]),
    (BatchNormRunningUpdate, "batch_norm_running_update", false, [BATCH_NORM]),
    (ReluForward, "relu_forward", false, []),
    (ReluBackward, "relu_backward", false, []),
    (Add, "add", false, []),
    (MaxPoolForward, "max_pool_forward", false, []),
    (MaxPoolBackward, "max_pool_backward", false, []),
    (GlobalAvgPoolForward, "global_avg_pool_forward", false, []),
    (GlobalAvgPoolBackward, "global_avg_pool_backward", false, []),
    (UpsampleNearestForward, "upsample_nearest_forward", false, []),
    (UpsampleNearestBackward, "upsample_nearest_backward", false, []),
    (CrossEntropyForward, "cross_entropy_forward", false, []),
    (CrossEntropyBackward, "cross_entropy_backward", false, []),
    (SgdUpdate, "sgd_update", false, []),
    (SumOfSquares, "sum_of_squares", false, []),
    (FiniteCheck, "finite_check", false, []),
}

impl Kernel {
    /// The source exactly as the device receives it: its preludes, then its own text.
    /// Browsers require the `subgroups` extension to be enabled in the text, while naga
    /// (native) rejects the directive and accepts the built-ins once the device has
    /// `Features::SUBGROUP`.
    pub fn source_for_device(self) -> String {
        self.joined_source(cfg!(target_arch = "wasm32"))
    }

    /// The joined source for the browser (`web` true: with `enable subgroups;` where the
    /// kernel uses subgroups) or for native devices.
    pub fn joined_source(self, web: bool) -> String {
        let mut text = String::new();
        if web && self.uses_subgroups() {
            text.push_str("enable subgroups;\n");
        }
        for prelude in self.preludes() {
            text.push_str(prelude.source);
            text.push('\n');
        }
        text.push_str(self.source());
        text
    }
}
