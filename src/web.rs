//! The browser entry points, called from `web/index.html`.

use wasm_bindgen::prelude::*;

/// Starts the app on the canvas with id `canvas_id`. Fails (and the page says so) where the
/// browser has no WebGPU.
#[wasm_bindgen]
pub async fn start(canvas_id: String) -> Result<(), JsValue> {
    use wasm_bindgen::JsCast;
    eframe::WebLogger::init(log::LevelFilter::Info).ok();
    let has_webgpu = web_sys::window()
        .map(|w| js_sys::Reflect::has(&w.navigator(), &"gpu".into()).unwrap_or(false))
        .unwrap_or(false);
    if !has_webgpu {
        return Err("this browser has no WebGPU: use a current Chrome or Edge".into());
    }
    let mut instance = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    instance.backends = wgpu::Backends::BROWSER_WEBGPU;
    if let Err(e) = wgpu::Instance::new(instance)
        .request_adapter(&Default::default())
        .await
    {
        log::warn!("no WebGPU adapter: {e}");
        return Err(
            "this browser offers WebGPU but no GPU adapter: enable hardware acceleration in its \
                    settings, or use a current Chrome or Edge on a machine with a supported GPU"
                .into(),
        );
    }
    let canvas = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&canvas_id))
        .ok_or("the page has no canvas for the app")?
        .dyn_into::<web_sys::HtmlCanvasElement>()?;
    let mut options = eframe::WebOptions::default();
    if let eframe::egui_wgpu::WgpuSetup::CreateNew(setup) = &mut options.wgpu_options.wgpu_setup {
        setup.instance_descriptor.backends = wgpu::Backends::BROWSER_WEBGPU;
    }
    eframe::WebRunner::new()
        .start(
            canvas,
            options,
            Box::new(|cc| {
                cc.egui_ctx.set_fonts(fonts());
                Ok(Box::new(crate::app::App::new(cc)))
            }),
        )
        .await
}

/// The page's fonts: egui's proportional face (Ubuntu Light) for all text, monospace included,
/// and egui's icons. The desktop app also has egui's monospace face (Hack); the page leaves it
/// out, which saves 300 KB of download, as no page shows code.
fn fonts() -> egui::FontDefinitions {
    use std::sync::Arc;
    let mut fonts = egui::FontDefinitions::empty();
    fonts.font_data.insert(
        "Ubuntu-Light".into(),
        Arc::new(egui::FontData::from_static(epaint_default_fonts::UBUNTU_LIGHT)),
    );
    let icons = egui::FontData::from_static(epaint_default_fonts::EGUI_ICONS).tweak(egui::FontTweak {
        scale: 0.90,
        ..Default::default()
    });
    fonts.font_data.insert("egui-icons".into(), Arc::new(icons));
    let faces = vec!["Ubuntu-Light".to_string(), "egui-icons".to_string()];
    for family in [egui::FontFamily::Proportional, egui::FontFamily::Monospace] {
        fonts.families.insert(family, faces.clone());
    }
    fonts
}

/// The app's state as JSON (see `app::status`), for tests and scripts.
#[wasm_bindgen(js_name = resnetStatus)]
pub fn resnet_status() -> String {
    crate::app::status::latest()
}

/// Every kernel at every precision of its tensors, each as `[label, text, constants]` with the
/// text exactly as the browser's device receives it and the values its pipeline sets for the
/// text's overrides on an adapter whose largest subgroup is `subgroup_max_size` lanes (JSON),
/// for the test that compiles them all in the browser, whose shader compiler checks more than
/// naga does (uniformity, for one).
#[wasm_bindgen(js_name = resnetShaderSources)]
pub fn resnet_shader_sources(subgroup_max_size: u32) -> String {
    let wide_lanes = crate::gpu::wide_lanes(subgroup_max_size);
    type Constants = std::collections::BTreeMap<&'static str, f64>;
    let all: Vec<(String, String, Constants)> = crate::shaders::Kernel::ALL
        .iter()
        .flat_map(|kernel| kernel.every_shader())
        .map(|shader| {
            let precisions: Vec<&str> = shader.precisions().iter().map(|p| p.wgsl()).collect();
            let label = format!("{} [{}]", shader.kernel.name(), precisions.join(", "));
            let constants = shader
                .kernel
                .overrides()
                .constants(wide_lanes)
                .into_iter()
                .collect();
            (label, shader.source_for_device(), constants)
        })
        .collect();
    serde_json::to_string(&all).expect("strings serialize")
}
