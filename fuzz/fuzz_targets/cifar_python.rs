#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| resnet_wgpu::untrusted::cifar_python_batch(bytes));
