//! Every WGSL file parses and validates with naga, with no adapter needed.

use resnet_wgpu::shaders::Kernel;

#[test]
fn every_shader_parses_and_validates() {
    let mut failures = Vec::new();
    for &kernel in Kernel::ALL {
        let module = match naga::front::wgsl::parse_str(kernel.source()) {
            Ok(module) => module,
            Err(e) => {
                failures.push(format!(
                    "{}: {}",
                    kernel.name(),
                    e.emit_to_string(kernel.source())
                ));
                continue;
            }
        };
        let capabilities = if kernel.uses_subgroups() {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        };
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
        if kernel.uses_subgroups() {
            validator.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
            validator.subgroup_operations(naga::valid::SubgroupOperationSet::all());
        }
        if let Err(e) = validator.validate(&module) {
            failures.push(format!(
                "{}: {}",
                kernel.name(),
                e.emit_to_string(kernel.source())
            ));
            continue;
        }
        if !module.entry_points.iter().any(|ep| ep.name == "main") {
            failures.push(format!("{}: no `main` entry point", kernel.name()));
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
            Kernel::ALL.iter().any(|k| k.name() == stem),
            "{} is not listed in src/shaders.rs",
            path.display()
        );
    }
}
