// The element type of activations in storage: a layer's input and output, and their
// gradients. Kernels declare those buffers as array<act>, so that the type is chosen here once.
alias act = f32;
