//! The table of every WGSL kernel: one file per operation and direction, loaded once here.

/// Declares the `Kernel` enum and its source table from `(Variant, "file stem", subgroups)`.
macro_rules! kernels {
    ($(($variant:ident, $file:literal, $subgroups:literal)),* $(,)?) => {
        /// A compute kernel: one `.wgsl` file in `shaders/` with a `main` entry point.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $($variant),* }

        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];

            /// The file stem, also used as the label of the kernel's wgpu objects.
            pub const fn name(self) -> &'static str {
                match self { $(Kernel::$variant => $file),* }
            }

            /// The WGSL text exactly as it is on disk.
            pub const fn source(self) -> &'static str {
                match self { $(Kernel::$variant => include_str!(concat!("../shaders/", $file, ".wgsl"))),* }
            }

            /// Whether the kernel uses subgroup operations (and so needs `Features::SUBGROUP`).
            pub const fn uses_subgroups(self) -> bool {
                match self { $(Kernel::$variant => $subgroups),* }
            }
        }
    };
}

kernels! {
    (Conv2dForward, "conv2d_forward", false),
    (Conv2dForwardSubgroup, "conv2d_forward_subgroup", true),
    (Conv2dInputGrad, "conv2d_input_grad", false),
    (Conv2dInputGradSubgroup, "conv2d_input_grad_subgroup", true),
    (Conv2dWeightGrad, "conv2d_weight_grad", false),
    (Conv2dWeightGradSubgroup, "conv2d_weight_grad_subgroup", true),
    (Matmul, "matmul", false),
    (MatmulSubgroup, "matmul_subgroup", true),
    (BiasGrad, "bias_grad", false),
    (BatchNormTrainForward, "batch_norm_train_forward", false),
    (BatchNormInferenceForward, "batch_norm_inference_forward", false),
    (BatchNormBackward, "batch_norm_backward", false),
    (ReluForward, "relu_forward", false),
    (ReluBackward, "relu_backward", false),
    (Add, "add", false),
    (MaxPoolForward, "max_pool_forward", false),
    (MaxPoolBackward, "max_pool_backward", false),
    (GlobalAvgPoolForward, "global_avg_pool_forward", false),
    (GlobalAvgPoolBackward, "global_avg_pool_backward", false),
    (UpsampleNearestForward, "upsample_nearest_forward", false),
    (UpsampleNearestBackward, "upsample_nearest_backward", false),
    (CrossEntropyForward, "cross_entropy_forward", false),
    (CrossEntropyBackward, "cross_entropy_backward", false),
    (SgdUpdate, "sgd_update", false),
}

impl Kernel {
    /// The source as the device needs it. Browsers require the `subgroups` extension to be
    /// enabled in the text, while naga (native) rejects the directive and accepts the
    /// built-ins once the device has `Features::SUBGROUP`.
    pub fn source_for_device(self) -> std::borrow::Cow<'static, str> {
        if cfg!(target_arch = "wasm32") && self.uses_subgroups() {
            format!("enable subgroups;\n{}", self.source()).into()
        } else {
            self.source().into()
        }
    }
}
