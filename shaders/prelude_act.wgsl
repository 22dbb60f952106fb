// The element type of activations in storage: a layer's input and output, and their
// gradients, as the convolution and element-wise kernels declare them. The GEMM kernels
// (prelude_matmul.wgsl), which also read activations, and all arithmetic still use f32: a
// narrower type needs conversions at their loads and stores first.
alias act = f32;
