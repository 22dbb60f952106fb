//! The table of every WGSL kernel: one file per operation and direction, loaded once here.
//!
//! A kernel's module is joined from three kinds of file, in this order:
//! - preludes, `shaders/prelude_*.wgsl`: declarations that several kernels share (a parameter
//!   struct, bindings, load and store helpers). Each is valid WGSL after the element aliases
//!   (below) and the preludes it builds on (its `needs`);
//! - the kernel's own file;
//! - bodies, `shaders/body_*.wgsl`: the entry point and loop that several kernels share, and
//!   after it, where several kernels share them, hooks of that loop. A body calls hooks
//!   (functions such as `load_a`, `store_row`, `element`) that the kernel's own file, its
//!   preludes or a later body declare; WGSL declarations may come in any order.
//!
//! A kernel names its preludes and body here, and the loader joins them around its own text.
//!
//! A kernel also names the element aliases its tensor bindings use: `act` for activations in
//! the convolution and element-wise kernels, `a_elem`, `b_elem` and `c_elem` for the GEMM
//! kernels' operands. The loader declares each as `f32` or `f16` ([`Precision`]) before the
//! preludes, so that one text serves both storage precisions; the kernels convert what they
//! load to `f32` and round what they store, so that arithmetic and accumulation stay in f32.
//! Parameters, their gradients and activation gradients are always `array<f32>`.

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

prelude!(LEN, "prelude_len", []);
prelude!(PLANES, "prelude_planes", []);
prelude!(CONV2D, "prelude_conv2d", []);
prelude!(GEMM_TILES, "prelude_tile", []);
prelude!(CONV2D_FORWARD, "prelude_conv2d_forward", [CONV2D]);
prelude!(CONV2D_INPUT_GRAD, "prelude_conv2d_input_grad", [CONV2D]);
prelude!(CONV2D_WEIGHT_GRAD, "prelude_conv2d_weight_grad", [CONV2D]);
prelude!(MATMUL, "prelude_matmul", []);
prelude!(BATCH_NORM, "prelude_batch_norm", []);
prelude!(MAX_POOL, "prelude_max_pool", []);
prelude!(UPSAMPLE, "prelude_upsample", []);
prelude!(GLOBAL_AVG_POOL, "prelude_global_avg_pool", []);
prelude!(CROSS_ENTROPY, "prelude_cross_entropy", []);

impl Prelude {
    pub const ALL: &'static [Prelude] = &[
        LEN,
        PLANES,
        CONV2D,
        GEMM_TILES,
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
body!(GEMM_TILED, "body_gemm_tiled");
body!(GEMM_NARROW, "body_gemm_narrow");
body!(STAGE_PLAIN, "body_stage_plain");
body!(BATCH_NORM_TRAIN, "body_batch_norm_train");
body!(BATCH_NORM_BACKWARD, "body_batch_norm_backward");

impl Body {
    pub const ALL: &'static [Body] = &[
        FLAT,
        GEMM_TILE,
        GEMM_SUBGROUP,
        GEMM_TILED,
        GEMM_NARROW,
        STAGE_PLAIN,
        BATCH_NORM_TRAIN,
        BATCH_NORM_BACKWARD,
    ];
}

/// The file stem of a kernel's text: its own name, or the file it shares with another kernel
/// (`"name" <= "file"`: the same hooks joined with another body).
macro_rules! file_of {
    ($name:literal) => {
        $name
    };
    ($name:literal, $file:literal) => {
        $file
    };
}

/// The values a kernel sets for its text's `override` constants when its pipeline is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overrides {
    /// The text's defaults.
    Defaults,
    /// `LANES` = the device's widest subgroup ([`crate::gpu::GpuContext::wide_lanes`]): the
    /// subgroup kernels with every lane of a 32- or 64-lane SIMD unit busy.
    WideLanes,
    /// `TILE` = 64: the tiled body on 64×64 tiles (its default is 128).
    Tile64,
}

impl Overrides {
    /// The constants of a pipeline on a device whose widest subgroup is `wide_lanes`.
    pub fn constants(self, wide_lanes: u32) -> Vec<(&'static str, f64)> {
        match self {
            Overrides::Defaults => Vec::new(),
            Overrides::WideLanes => vec![("LANES", f64::from(wide_lanes))],
            Overrides::Tile64 => vec![("TILE", 64.0)],
        }
    }
}

/// The [`Overrides`] of a kernel table entry's marker: none, `wide` or `tile_64`.
macro_rules! overrides_of {
    () => {
        Overrides::Defaults
    };
    (wide) => {
        Overrides::WideLanes
    };
    (tile_64) => {
        Overrides::Tile64
    };
}

/// Declares the `Kernel` enum and its source table from
/// `(Variant, "name", subgroups, [preludes], [body], [element aliases])`, where the kernel's
/// text is `shaders/<name>.wgsl`, or `"name" <= "file stem"` for a kernel whose text another
/// kernel shares (joined with another body, or with other [`Overrides`]); `(…, marker)` for a
/// kernel that sets its text's overrides (`wide`: [`Overrides::WideLanes`], `tile_64`:
/// [`Overrides::Tile64`]). `[body]` is empty for a kernel whose own file declares its entry
/// point.
macro_rules! kernels {
    ($(($variant:ident, $file:literal $(<= $shared:literal)?, $subgroups:literal, [$($prelude:ident),*], [$($body:ident),*], [$($alias:ident),*] $(, $marker:ident)?)),* $(,)?) => {
        /// A compute kernel: one `.wgsl` file in `shaders/` with a `main` entry point (its own
        /// or its body's).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $($variant),* }

        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];

            /// The kernel's name, also the label of its wgpu objects.
            pub const fn name(self) -> &'static str {
                match self { $(Kernel::$variant => $file),* }
            }

            /// The values it sets for its text's overrides.
            pub const fn overrides(self) -> Overrides {
                match self { $(Kernel::$variant => overrides_of!($($marker)?)),* }
            }

            /// The kernel's own WGSL text exactly as it is on disk (without its preludes and
            /// body).
            pub const fn source(self) -> &'static str {
                match self { $(Kernel::$variant => include_str!(concat!("../shaders/", file_of!($file $(, $shared)?), ".wgsl"))),* }
            }

            /// The stem of the file that holds its text (its name's, unless it shares another
            /// kernel's).
            pub const fn file(self) -> &'static str {
                match self { $(Kernel::$variant => file_of!($file $(, $shared)?)),* }
            }

            /// The preludes joined before the kernel's text, in order.
            pub const fn preludes(self) -> &'static [Prelude] {
                match self { $(Kernel::$variant => &[$($prelude),*]),* }
            }

            /// The bodies joined after the kernel's text, in order: its entry point's, and
            /// the hooks that several kernels share for it.
            pub const fn bodies(self) -> &'static [Body] {
                match self { $(Kernel::$variant => &[$($body),*]),* }
            }

            /// The element aliases of its tensor bindings, each declared `f32` or `f16` by the
            /// loader.
            pub const fn aliases(self) -> &'static [&'static str] {
                match self { $(Kernel::$variant => &[$(stringify!($alias)),*]),* }
            }

            /// Whether the kernel uses subgroup operations (and so needs `Features::SUBGROUP`).
            pub const fn uses_subgroups(self) -> bool {
                match self { $(Kernel::$variant => $subgroups),* }
            }
        }
    };
}

kernels! {
    (Conv2dForward, "conv2d_forward", false, [CONV2D, GEMM_TILES, CONV2D_FORWARD], [GEMM_TILE], [act]),
    (Conv2dForwardSubgroup, "conv2d_forward_subgroup", true, [CONV2D, CONV2D_FORWARD], [GEMM_SUBGROUP], [act]),
    (Conv2dForwardSubgroupWide, "conv2d_forward_subgroup_wide" <= "conv2d_forward_subgroup", true, [CONV2D, CONV2D_FORWARD], [GEMM_SUBGROUP], [act], wide),
    (Conv2dForwardTiled, "conv2d_forward_tiled" <= "conv2d_forward", false, [CONV2D, GEMM_TILES, CONV2D_FORWARD], [GEMM_TILED], [act]),
    (Conv2dForwardTiled64, "conv2d_forward_tiled_64" <= "conv2d_forward", false, [CONV2D, GEMM_TILES, CONV2D_FORWARD], [GEMM_TILED], [act], tile_64),
    (Conv2dForwardNarrow, "conv2d_forward_narrow" <= "conv2d_forward", false, [CONV2D, GEMM_TILES, CONV2D_FORWARD], [GEMM_NARROW], [act]),
    (Conv2dInputGrad, "conv2d_input_grad", false, [CONV2D, GEMM_TILES, CONV2D_INPUT_GRAD], [GEMM_TILE], []),
    (Conv2dInputGradSubgroup, "conv2d_input_grad_subgroup", true, [CONV2D, CONV2D_INPUT_GRAD], [GEMM_SUBGROUP], []),
    (Conv2dInputGradSubgroupWide, "conv2d_input_grad_subgroup_wide" <= "conv2d_input_grad_subgroup", true, [CONV2D, CONV2D_INPUT_GRAD], [GEMM_SUBGROUP], [], wide),
    (Conv2dInputGradTiled, "conv2d_input_grad_tiled" <= "conv2d_input_grad", false, [CONV2D, GEMM_TILES, CONV2D_INPUT_GRAD], [GEMM_TILED], []),
    (Conv2dInputGradTiled64, "conv2d_input_grad_tiled_64" <= "conv2d_input_grad", false, [CONV2D, GEMM_TILES, CONV2D_INPUT_GRAD], [GEMM_TILED], [], tile_64),
    (Conv2dInputGradNarrow, "conv2d_input_grad_narrow" <= "conv2d_input_grad", false, [CONV2D, GEMM_TILES, CONV2D_INPUT_GRAD], [GEMM_NARROW], []),
    (Conv2dWeightGrad, "conv2d_weight_grad", false, [CONV2D, GEMM_TILES, CONV2D_WEIGHT_GRAD], [GEMM_TILE], [act]),
    (Conv2dWeightGradSubgroup, "conv2d_weight_grad_subgroup", true, [CONV2D, CONV2D_WEIGHT_GRAD], [GEMM_SUBGROUP], [act]),
    (Conv2dWeightGradSubgroupWide, "conv2d_weight_grad_subgroup_wide" <= "conv2d_weight_grad_subgroup", true, [CONV2D, CONV2D_WEIGHT_GRAD], [GEMM_SUBGROUP], [act], wide),
    (Conv2dWeightGradTiled, "conv2d_weight_grad_tiled" <= "conv2d_weight_grad", false, [CONV2D, GEMM_TILES, CONV2D_WEIGHT_GRAD], [GEMM_TILED], [act]),
    (Conv2dWeightGradTiled64, "conv2d_weight_grad_tiled_64" <= "conv2d_weight_grad", false, [CONV2D, GEMM_TILES, CONV2D_WEIGHT_GRAD], [GEMM_TILED], [act], tile_64),
    (SplitKSum, "split_k_sum", false, [], [FLAT], []),
    (Matmul, "matmul", false, [MATMUL, GEMM_TILES], [GEMM_TILE], [a_elem, b_elem, c_elem]),
    (MatmulSubgroup, "matmul_subgroup", true, [MATMUL], [GEMM_SUBGROUP], [a_elem, b_elem, c_elem]),
    (MatmulSubgroupWide, "matmul_subgroup_wide" <= "matmul_subgroup", true, [MATMUL], [GEMM_SUBGROUP], [a_elem, b_elem, c_elem], wide),
    (MatmulTiled, "matmul_tiled" <= "matmul", false, [MATMUL, GEMM_TILES], [GEMM_TILED, STAGE_PLAIN], [a_elem, b_elem, c_elem]),
    (MatmulTiled64, "matmul_tiled_64" <= "matmul", false, [MATMUL, GEMM_TILES], [GEMM_TILED, STAGE_PLAIN], [a_elem, b_elem, c_elem], tile_64),
    (MatmulNarrow, "matmul_narrow" <= "matmul", false, [MATMUL, GEMM_TILES], [GEMM_NARROW], [a_elem, b_elem, c_elem]),
    (BiasGrad, "bias_grad", false, [], [], []),
    (BatchNormTrainForward, "batch_norm_train_forward", false, [BATCH_NORM], [BATCH_NORM_TRAIN], [act]),
    (BatchNormInferenceForward, "batch_norm_inference_forward", false, [BATCH_NORM], [FLAT], [act]),
    (BatchNormBackward, "batch_norm_backward", false, [BATCH_NORM], [BATCH_NORM_BACKWARD], [act]),
    (BatchNormAddReluTrainForward, "batch_norm_add_relu_train_forward", false, [BATCH_NORM], [BATCH_NORM_TRAIN], [act]),
    (BatchNormAddReluInferenceForward, "batch_norm_add_relu_inference_forward", false, [BATCH_NORM], [FLAT], [act]),
    (BatchNormAddReluBackward, "batch_norm_add_relu_backward", false, [BATCH_NORM], [BATCH_NORM_BACKWARD], [act]),
    (BatchNormRunningUpdate, "batch_norm_running_update", false, [BATCH_NORM], [FLAT], []),
    (ReluForward, "relu_forward", false, [LEN], [FLAT], [act]),
    (ReluBackward, "relu_backward", false, [LEN], [FLAT], [act]),
    (Add, "add", false, [LEN], [FLAT], [act]),
    (MaxPoolForward, "max_pool_forward", false, [PLANES, MAX_POOL], [FLAT], [act]),
    (MaxPoolBackward, "max_pool_backward", false, [PLANES, MAX_POOL], [FLAT], []),
    (GlobalAvgPoolForward, "global_avg_pool_forward", false, [GLOBAL_AVG_POOL], [FLAT], [act]),
    (GlobalAvgPoolBackward, "global_avg_pool_backward", false, [GLOBAL_AVG_POOL], [FLAT], []),
    (UpsampleNearestForward, "upsample_nearest_forward", false, [PLANES, UPSAMPLE], [FLAT], [act]),
    (UpsampleNearestBackward, "upsample_nearest_backward", false, [PLANES, UPSAMPLE], [FLAT], []),
    (CrossEntropyForward, "cross_entropy_forward", false, [CROSS_ENTROPY], [], [act]),
    (CrossEntropyBackward, "cross_entropy_backward", false, [CROSS_ENTROPY], [FLAT], [act]),
    (SgdUpdate, "sgd_update", false, [], [FLAT], []),
    (SumOfSquares, "sum_of_squares", false, [], [], []),
    (FiniteCheck, "finite_check", false, [], [FLAT], []),
}

/// How a tensor's values are stored on the device. Kernels read f16 values into f32, compute
/// and accumulate in f32, and round to f16 only what they store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    /// IEEE half precision; needs the device's `shader-f16` feature.
    F16,
}

impl Precision {
    /// The WGSL type of one stored value.
    pub const fn wgsl(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// Bytes of one stored value.
    pub const fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

/// Every element alias a kernel may declare.
pub const ELEMENT_ALIASES: [&str; 4] = ["act", "a_elem", "b_elem", "c_elem"];

/// The most element aliases a kernel declares (the GEMM kernels' three operands).
const MAX_ALIASES: usize = 3;

/// A kernel compiled for the precision of its tensors: one per element alias it declares
/// ([`Kernel::aliases`]). What a pipeline is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shader {
    pub kernel: Kernel,
    precisions: [Precision; MAX_ALIASES],
}

impl Kernel {
    /// The kernel of a launch whose tensors are all f32 by nature (parameters, gradients):
    /// one that declares no element alias.
    pub fn plain(self) -> Shader {
        self.stored(&[])
    }

    /// The kernel compiled for `precisions`, one per element alias it declares, in order.
    pub fn stored(self, precisions: &[Precision]) -> Shader {
        assert_eq!(
            precisions.len(),
            self.aliases().len(),
            "{}: one precision for each of its element aliases {:?}",
            self.name(),
            self.aliases()
        );
        let mut all = [Precision::F32; MAX_ALIASES];
        all[..precisions.len()].copy_from_slice(precisions);
        Shader {
            kernel: self,
            precisions: all,
        }
    }
}

impl Kernel {
    /// The kernel compiled for every combination of precisions of its element aliases.
    pub fn every_shader(self) -> Vec<Shader> {
        let aliases = self.aliases().len();
        (0..1usize << aliases)
            .map(|bits| {
                let precisions: Vec<Precision> = (0..aliases)
                    .map(|i| match bits >> i & 1 {
                        0 => Precision::F32,
                        _ => Precision::F16,
                    })
                    .collect();
                self.stored(&precisions)
            })
            .collect()
    }
}

impl Shader {
    /// The precision of each element alias, in the order of [`Kernel::aliases`].
    pub fn precisions(&self) -> &[Precision] {
        &self.precisions[..self.kernel.aliases().len()]
    }

    /// Whether any tensor is f16 (the device needs `shader-f16`).
    pub fn uses_f16(&self) -> bool {
        self.precisions().contains(&Precision::F16)
    }

    /// The kernel's name, with `_f16` after it where any tensor is f16: the label of its wgpu
    /// objects.
    pub fn label(&self) -> String {
        match self.uses_f16() {
            true => format!("{}_f16", self.kernel.name()),
            false => self.kernel.name().to_string(),
        }
    }

    /// The source exactly as the device receives it: its preludes, its own text, then its
    /// body. Browsers require the `subgroups` extension to be enabled in the text, while naga
    /// (native) rejects the directive and accepts the built-ins once the device has
    /// `Features::SUBGROUP`.
    pub fn source_for_device(self) -> String {
        self.joined_source(cfg!(target_arch = "wasm32"))
    }

    /// The joined source for the browser (`web` true: with `enable subgroups;` where the
    /// kernel uses subgroups) or for native devices: `enable f16;` where a tensor is f16, the
    /// element aliases, the preludes, the kernel's own text and its body.
    pub fn joined_source(self, web: bool) -> String {
        let kernel = self.kernel;
        let mut text = String::new();
        if self.uses_f16() {
            text.push_str("enable f16;\n");
        }
        if web && kernel.uses_subgroups() {
            text.push_str("enable subgroups;\n");
        }
        for (alias, precision) in kernel.aliases().iter().zip(self.precisions()) {
            text.push_str(&format!("alias {alias} = {};\n", precision.wgsl()));
        }
        for prelude in kernel.preludes() {
            text.push_str(prelude.source);
            text.push('\n');
        }
        text.push_str(kernel.source());
        for body in kernel.bodies() {
            text.push('\n');
            text.push_str(body.source);
        }
        text
    }
}
