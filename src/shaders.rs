//! The table of every WGSL kernel: one file per operation and direction, loaded once here.
//!
//! A kernel's module is joined from three kinds of file, in this order:
//! - preludes, `shaders/prelude_*.wgsl`: declarations that several kernels share (a parameter
//!   struct, the element type of activations, bindings, load and store helpers). Each is
//!   valid WGSL on its own, or after the preludes it builds on (its `needs`);
//! - the kernel's own file;
//! - at most one body, `shaders/body_*.wgsl`: the entry point and loop that several kernels
//!   share. A body calls hooks (functions such as `load_a`, `store_row`, `element`) that the
//!   kernel's own file or its preludes declare; WGSL declarations may come in any order.
//!
//! A kernel names its preludes and body here, and the loader joins them around its own text.

/// A file of shared declarations, joined before the kernels that name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prelude {
    pub name: &'static str,
    pub source: &'static str,
    /// The preludes it builds on: it is valid WGSL after them, and every kernel that names it
    /// names them before it.
    pub needs: &'static [Prelude],
}

macro_rules! prelude {
    ($name:ident, $file:literal, [$($need:ident),*]) => {
        pub const $name: Prelude = Prelude {
            name: $file,
            source: include_str!(concat!("../shaders/", $file, ".wgsl")),
            needs: &[$($need),*],
        };
    };
}

prelude!(ACT, "prelude_act", []);
prelude!(LEN, "prelude_len", []);
prelude!(PLANES, "prelude_planes", []);
prelude!(CONV2D, "prelude_conv2d", []);
prelude!(CONV2D_FORWARD, "prelude_conv2d_forward", [ACT, CONV2D]);
prelude!(CONV2D_INPUT_GRAD, "prelude_conv2d_input_grad", [ACT, CONV2D]);
prelude!(CONV2D_WEIGHT_GRAD, "prelude_conv2d_weight_grad", [ACT, CONV2D]);
prelude!(MATMUL, "prelude_matmul", []);
prelude!(BATCH_NORM, "prelude_batch_norm", []);
prelude!(MAX_POOL, "prelude_max_pool", []);
prelude!(UPSAMPLE, "prelude_upsample", []);
prelude!(GLOBAL_AVG_POOL, "prelude_global_avg_pool", []);
prelude!(CROSS_ENTROPY, "prelude_cross_entropy", [ACT]);

impl Prelude {
    pub const ALL: &'static [Prelude] = &[
        ACT,
        LEN,
        PLANES,
        CONV2D,
        CONV2D_FORWARD,
        CONV2D_INPUT_GRAD,
        CONV2D_WEIGHT_GRAD,
        MATMUL,
        BATCH_NORM,
        MAX_POOL,
        UPSAMPLE,
        GLOBAL_AVG_POOL,
        CROSS_ENTROPY,
    ];
}

/// An entry point and loop shared by several kernels, joined after the text of each kernel
/// that names it. It is valid WGSL only with the hooks that such a kernel supplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Body {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! body {
    ($name:ident, $file:literal) => {
        pub const $name: Body = Body {
            name: $file,
            source: include_str!(concat!("../shaders/", $file, ".wgsl")),
        };
    };
}

body!(FLAT, "body_flat");
body!(GEMM_TILE, "body_gemm_tile");
body!(GEMM_SUBGROUP, "body_gemm_subgroup");
body!(BATCH_NORM_TRAIN, "body_batch_norm_train");
body!(BATCH_NORM_BACKWARD, "body_batch_norm_backward");

impl Body {
    pub const ALL: &'static [Body] = &[
        FLAT,
        GEMM_TILE,
        GEMM_SUBGROUP,
        BATCH_NORM_TRAIN,
        BATCH_NORM_BACKWARD,
    ];

    /// The body of a list of none or one.
    const fn one_of(bodies: &[Body]) -> Option<Body> {
        match bodies {
            [body] => Some(*body),
            _ => None,
        }
    }
}

/// Declares the `Kernel` enum and its source table from
/// `(Variant, "file stem", subgroups, [preludes], [body])`, or `(…, wide)` for a kernel that
/// runs a file's text with its `LANES` override set to the device's subgroup width
/// ([`crate::gpu::GpuContext::wide_lanes`]); such a kernel's name is the file stem + `_wide`.
/// `[body]` is empty for a kernel whose own file declares its entry point.
macro_rules! kernels {
    ($(($variant:ident, $file:literal, $subgroups:literal, [$($prelude:ident),*], [$($body:ident)?] $(, $wide:ident)?)),* $(,)?) => {
        /// A compute kernel: one `.wgsl` file in `shaders/` with a `main` entry point (its own
        /// or its body's).
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

            /// The kernel's own WGSL text exactly as it is on disk (without its preludes and
            /// body).
            pub const fn source(self) -> &'static str {
                match self { $(Kernel::$variant => include_str!(concat!("../shaders/", $file, ".wgsl"))),* }
            }

            /// The preludes joined before the kernel's text, in order.
            pub const fn preludes(self) -> &'static [Prelude] {
                match self { $(Kernel::$variant => &[$($prelude),*]),* }
            }

            /// The body joined after the kernel's text, if any.
            pub const fn body(self) -> Option<Body> {
                match self { $(Kernel::$variant => Body::one_of(&[$($body)?])),* }
            }

            /// Whether the kernel uses subgroup operations (and so needs `Features::SUBGROUP`).
            pub const fn uses_subgroups(self) -> bool {
                match self { $(Kernel::$variant => $subgroups),* }
            }
        }
    };
}

kernels! {
    (Conv2dForward, "conv2d_forward", false, [ACT, CONV2D, CONV2D_FORWARD], [GEMM_TILE]),
    (Conv2dForwardSubgroup, "conv2d_forward_subgroup", true, [ACT, CONV2D, CONV2D_FORWARD], [GEMM_SUBGROUP]),
    (Conv2dForwardSubgroupWide, "conv2d_forward_subgroup", true, [ACT, CONV2D, CONV2D_FORWARD], [GEMM_SUBGROUP], wide),
    (Conv2dInputGrad, "conv2d_input_grad", false, [ACT, CONV2D, CONV2D_INPUT_GRAD], [GEMM_TILE]),
    (Conv2dInputGradSubgroup, "conv2d_input_grad_subgroup", true, [ACT, CONV2D, CONV2D_INPUT_GRAD], [GEMM_SUBGROUP]),
    (Conv2dInputGradSubgroupWide, "conv2d_input_grad_subgroup", true, [ACT, CONV2D, CONV2D_INPUT_GRAD], [GEMM_SUBGROUP], wide),
    (Conv2dWeightGrad, "conv2d_weight_grad", false, [ACT, CONV2D, CONV2D_WEIGHT_GRAD], [GEMM_TILE]),
    (Conv2dWeightGradSubgroup, "conv2d_weight_grad_subgroup", true, [ACT, CONV2D, CONV2D_WEIGHT_GRAD], [GEMM_SUBGROUP]),
    (Conv2dWeightGradSubgroupWide, "conv2d_weight_grad_subgroup", true, [ACT, CONV2D, CONV2D_WEIGHT_GRAD], [GEMM_SUBGROUP], wide),
    (Conv2dWeightGradSplit, "conv2d_weight_grad_split", false, [ACT, CONV2D, CONV2D_WEIGHT_GRAD], [GEMM_TILE]),
    (SplitKSum, "split_k_sum", false, [], [FLAT]),
    (Matmul, "matmul", false, [MATMUL], [GEMM_TILE]),
    (MatmulSubgroup, "matmul_subgroup", true, [MATMUL], [GEMM_SUBGROUP]),
    (MatmulSubgroupWide, "matmul_subgroup", true, [MATMUL], [GEMM_SUBGROUP], wide),
    (MatmulTiled, "matmul_tiled", false, [MATMUL], []),
    (BiasGrad, "bias_grad", false, [ACT], []),
    (BatchNormTrainForward, "batch_norm_train_forward", false, [ACT, BATCH_NORM], [BATCH_NORM_TRAIN]),
    (BatchNormInferenceForward, "batch_norm_inference_forward", false, [ACT, BATCH_NORM], [FLAT]),
    (BatchNormBackward, "batch_norm_backward", false, [ACT, BATCH_NORM], [BATCH_NORM_BACKWARD]),
    (BatchNormAddReluTrainForward, "batch_norm_add_relu_train_forward", false, [ACT, BATCH_NORM], [BATCH_NORM_TRAIN]),
    (BatchNormAddReluInferenceForward, "batch_norm_add_relu_inference_forward", false, [ACT, BATCH_NORM], [FLAT]),
    (BatchNormAddReluBackward, "batch_norm_add_relu_backward", false, [ACT, BATCH_NORM], [BATCH_NORM_BACKWARD]),
    (BatchNormRunningUpdate, "batch_norm_running_update", false, [BATCH_NORM], [FLAT]),
    (ReluForward, "relu_forward", false, [ACT, LEN], [FLAT]),
    (ReluBackward, "relu_backward", false, [ACT, LEN], [FLAT]),
    (Add, "add", false, [ACT, LEN], [FLAT]),
    (MaxPoolForward, "max_pool_forward", false, [ACT, PLANES, MAX_POOL], [FLAT]),
    (MaxPoolBackward, "max_pool_backward", false, [ACT, PLANES, MAX_POOL], [FLAT]),
    (GlobalAvgPoolForward, "global_avg_pool_forward", false, [ACT, GLOBAL_AVG_POOL], [FLAT]),
    (GlobalAvgPoolBackward, "global_avg_pool_backward", false, [ACT, GLOBAL_AVG_POOL], [FLAT]),
    (UpsampleNearestForward, "upsample_nearest_forward", false, [ACT, PLANES, UPSAMPLE], [FLAT]),
    (UpsampleNearestBackward, "upsample_nearest_backward", false, [ACT, PLANES, UPSAMPLE], [FLAT]),
    (CrossEntropyForward, "cross_entropy_forward", false, [ACT, CROSS_ENTROPY], []),
    (CrossEntropyBackward, "cross_entropy_backward", false, [ACT, CROSS_ENTROPY], [FLAT]),
    (SgdUpdate, "sgd_update", false, [], [FLAT]),
    (SumOfSquares, "sum_of_squares", false, [], []),
    (FiniteCheck, "finite_check", false, [], [FLAT]),
}

impl Kernel {
    /// The source exactly as the device receives it: its preludes, its own text, then its
    /// body. Browsers require the `subgroups` extension to be enabled in the text, while naga
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
        if let Some(body) = self.body() {
            text.push('\n');
            text.push_str(body.source);
        }
        text
    }
}
