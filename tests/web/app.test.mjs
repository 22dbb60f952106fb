// The web app in headless Chromium with SwiftShader's WebGPU, driven by playwright-core: the
// page loads without console errors, trains the small configuration on the built-in sample data
// for a few steps with the loss curve growing, downloads its checkpoint and uploads it back,
// classifies a dropped image (with its heat map), survives the loss of its GPU device (reopens
// it and continues from the last checkpoint), keeps its run over a page reload (offered back
// and resumed), can be reached and started at 640 × 480 and on a phone, compiles every kernel,
// and saves screenshots to target/screenshots/. Buttons are clicked with the mouse at the rectangles the app reports in
// its status snapshot (window.resnetStatus()); everything asserted comes from that snapshot of
// the app's own state.
//
// Needs web/pkg (bash web/build.sh) and Debian's chromium.

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const webRoot = path.resolve(here, "../../web");
const shots = path.resolve(here, "../../target/screenshots");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
fs.mkdirSync(shots, { recursive: true });

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    const file = path.join(webRoot, url.pathname === "/" ? "index.html" : decodeURIComponent(url.pathname));
    if (!file.startsWith(webRoot) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const flags = [
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--use-angle=swiftshader",
  "--no-sandbox",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function launch(extraFlags = []) {
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: [...flags, ...extraFlags] });
}

// Reads the app's status snapshot, waits for a condition on it, and clicks its controls.
function drive(page, errors) {
  const status = () => page.evaluate(() => (window.resnetStatus ? window.resnetStatus() : {}));
  const waitFor = async (what, done, ms) => {
    const start = Date.now();
    for (;;) {
      const s = await status();
      if (done(s)) return s;
      if (Date.now() - start > ms) {
        throw new Error(`timed out waiting for ${what}; status ${JSON.stringify(s)}; errors ${JSON.stringify(errors)}`);
      }
      await page.waitForTimeout(250);
    }
  };
  // A control's rectangle in the page's CSS pixels (the status gives points).
  const rectOf = (s, name) => {
    const rect = s.controls?.[name];
    assert.ok(rect, `the app shows no "${name}" control: ${JSON.stringify(s.controls)}`);
    const scale = page.viewportSize().width / s.screen[0];
    return rect.map((v) => v * scale);
  };
  const click = async (name) => {
    const [x, y, w, h] = rectOf(await status(), name);
    await page.mouse.click(x + w / 2, y + h / 2);
  };
  return { status, waitFor, click, rectOf };
}

test("the web app trains, saves and reloads a checkpoint, classifies a dropped image, survives a lost device, and keeps its run over a reload", { timeout: 900_000 }, async () => {
  assert.ok(fs.existsSync(path.join(webRoot, "pkg/resnet_wgpu_bg.wasm")), "build the web app first: bash web/build.sh");
  assert.ok(fs.existsSync(chromiumPath), `no Chromium at ${chromiumPath}: apt-get install chromium`);
  const server = await serve();
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(String(e)));
    // Keeps every WebGPU device the page opens, so that the test can destroy the trainer's as a
    // driver reset or a lost GPU would.
    await page.addInitScript(() => {
      window.gpuDevices = [];
      if (!window.GPUAdapter) return;
      const request = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await request.apply(this, args);
        window.gpuDevices.push(device);
        return device;
      };
    });
    await page.goto(`http://127.0.0.1:${server.address().port}/`);

    const { status, waitFor, click } = drive(page, errors);

    const ready = await waitFor("the WebGPU device", (s) => s.device === "ready" || s.device === "missing", 180_000);
    assert.equal(ready.device, "ready", `no WebGPU device: ${ready.message}`);
    assert.equal(ready.data_source, "built-in sample data");
    await page.screenshot({ path: path.join(shots, "web-start.png") });

    await click("Small and fast");
    await waitFor("the small configuration", (s) => s.variant.startsWith("resnet18 (cifar stem)"), 10_000);
    await click("Start");
    // The start's phases in the order they came, each with the seconds after Start it began.
    const order = ["choosing kernels", "building the network", "running the first training step"];
    const phases = [];
    const startedAt = Date.now();
    await waitFor("the first step", (s) => {
      const stage = s.starting && (order.find((o) => s.starting.startsWith(o)) ?? s.starting);
      if (stage && phases.at(-1)?.stage !== stage) phases.push({ stage, at: (Date.now() - startedAt) / 1000 });
      return s.step_losses >= 1;
    }, 300_000);
    console.log(`start phases (s after Start): ${JSON.stringify(phases)}; first step ${(Date.now() - startedAt) / 1000} s after Start`);
    const seen = phases.map((p) => order.indexOf(p.stage));
    assert.ok(!seen.includes(-1), `a start phase of another name: ${JSON.stringify(phases)}`);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), `start phases out of order: ${JSON.stringify(phases)}`);
    assert.ok(seen.includes(0) && seen.includes(2), `kernel choice and the first step are shown: ${JSON.stringify(phases)}`);
    const first = await waitFor("three training steps", (s) => s.step_losses >= 3, 300_000);
    assert.equal(first.run, "running");
    const later = await waitFor("the curve to grow", (s) => s.step_losses >= first.step_losses + 2, 300_000);
    assert.ok(Number.isFinite(later.last_loss), `loss ${later.last_loss}`);
    await page.screenshot({ path: path.join(shots, "web-training.png") });
    await click("Pause");
    const paused = await waitFor("the pause", (s) => s.run === "paused", 60_000);

    // Download the checkpoint, then upload it back: the run is loaded, paused, ready to resume.
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 120_000 }), click("Save")]);
    const saved = path.join(shots, "web-checkpoint.safetensors");
    await download.saveAs(saved);
    assert.match(download.suggestedFilename(), /\.safetensors$/);
    assert.ok(fs.statSync(saved).size > 100_000, "the checkpoint holds the weights");
    const [chooser] = await Promise.all([page.waitForEvent("filechooser", { timeout: 60_000 }), click("Load")]);
    await chooser.setFiles(saved);
    const loaded = await waitFor("the uploaded checkpoint", (s) => (s.message ?? "").includes("press Resume"), 120_000);
    assert.equal(loaded.run, "paused");

    // Drop a PNG (drawn in the page) on the canvas, as a person drops a file.
    await page.evaluate(async () => {
      const c = new OffscreenCanvas(40, 40);
      const g = c.getContext("2d");
      g.fillStyle = "#223";
      g.fillRect(0, 0, 40, 40);
      g.fillStyle = "#e33";
      g.beginPath();
      g.arc(20, 20, 12, 0, 2 * Math.PI);
      g.fill();
      const blob = await c.convertToBlob({ type: "image/png" });
      const transfer = new DataTransfer();
      transfer.items.add(new File([blob], "disc.png", { type: "image/png" }));
      const canvas = document.getElementById("app");
      canvas.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    const classified = await waitFor("the classification", (s) => s.classified === "disc.png" && s.top.length === 5, 120_000);
    const probabilities = classified.top.map((t) => t[1]);
    assert.ok(probabilities.every((p, i) => i === 0 || probabilities[i - 1] >= p), "most probable first");
    assert.equal(classified.tab, "Classify");
    // The heat map of the top class, computed on the page's WebGPU device: the small
    // network's last stage is an 8 × 8 grid.
    assert.equal(classified.heat?.class, classified.top[0][0], JSON.stringify(classified.heat));
    assert.deepEqual(classified.heat.cells, [8, 8]);
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(shots, "web-classify.png") });

    assert.deepEqual(errors, [], "the console shows errors");

    // The trainer's device is lost mid-run: the page says so, offers to reopen it, and the run
    // continues from the checkpoint loaded above.
    await click("Resume");
    await waitFor("a step after the checkpoint", (s) => s.run === "running" && s.global_step > 0, 120_000);
    const destroyed = await page.evaluate(() => {
      const device = window.gpuDevices.filter((d) => d.label === "resnet-wgpu device").at(-1);
      device?.destroy();
      return Boolean(device);
    });
    assert.ok(destroyed, "the trainer's WebGPU device was found");
    const failed = await waitFor("the failure to be seen", (s) => s.device_failed, 120_000);
    assert.match(failed.message, /the GPU failed/);
    assert.equal(failed.run, "paused");
    // SwiftShader finishes the lost device's work before it draws again (about 40 s here).
    for (let waited = 0; ; waited += 5_000) {
      const drew = await Promise.race([
        page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done(true)))),
        new Promise((done) => setTimeout(() => done(false), 5_000)),
      ]);
      if (drew) break;
      assert.ok(waited < 240_000, "the page never drew again after the device was lost");
    }
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(shots, "web-device-lost.png") });
    await click("Reopen the GPU");
    const step = paused.global_step; // the checkpoint's step
    await waitFor("the run on a new device", (s) => s.device === "ready" && (s.message ?? "").includes(`continues from step ${step}`), 180_000);
    const continued = await waitFor("training to continue", (s) => s.run === "running" && s.global_step > step, 180_000);
    // The curve shows the steps since the checkpoint was loaded, without those undone.
    assert.equal(continued.step_losses, continued.global_step - step, "the curve goes on from the checkpoint");

    // Reloading the page loses nothing: the run is kept in the site's storage when paused, and
    // the next visit offers it back at the kept step with the same weights (the same file).
    await click("Pause");
    const keptAt = await waitFor(
      "the run kept at the pause",
      (s) => s.run === "paused" && s.kept && s.kept.global_step >= continued.global_step,
      120_000,
    );
    const kept = keptAt.kept;
    assert.ok(kept.storage_used > 0, JSON.stringify(kept));
    await page.reload();
    const back = await waitFor("the offer of the kept run", (s) => s.device === "ready" && s.kept_offer, 180_000);
    assert.equal(back.kept_offer.global_step, kept.global_step);
    assert.equal(back.kept_offer.digest, kept.digest);
    assert.ok(back.kept_offer.storage_used >= kept.storage_used / 2, JSON.stringify(back.kept_offer));
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(shots, "web-resume-offer.png") });
    await click("Resume the kept run");
    const reloaded = await waitFor("the kept run to load", (s) => (s.message ?? "").includes("press Resume"), 120_000);
    assert.equal(reloaded.loaded_digest, kept.digest);
    assert.equal(reloaded.kept_offer, null);
    await click("Resume");
    const resumed = await waitFor(
      "training from the kept step",
      (s) => s.run === "running" && s.global_step > kept.global_step,
      180_000,
    );
    assert.equal(resumed.step_losses, resumed.global_step - kept.global_step, "the run goes on from the kept step");
  } finally {
    await browser.close();
    server.close();
  }
});

// Without WebGPU, or with WebGPU but no adapter, the page explains what is missing instead of
// showing a blank canvas.
for (const [what, script, expected] of [
  ["no WebGPU", "delete Navigator.prototype.gpu;", "does not offer"],
  ["no adapter", "navigator.gpu.requestAdapter = async () => null;", "no GPU adapter"],
]) {
  test(`with ${what} the page says what to do`, { timeout: 300_000 }, async () => {
    const server = await serve();
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
      await page.addInitScript(script);
      await page.goto(`http://127.0.0.1:${server.address().port}/`);
      const notice = page.locator("#notice-text");
      await notice.filter({ hasText: expected }).waitFor({ timeout: 240_000 });
      const text = await notice.textContent();
      assert.match(text, /Chrome or Edge/);
      assert.ok(await page.locator("#notice").isVisible());
      await page.screenshot({ path: path.join(shots, `web-${what.replace(" ", "-")}.png`) });
    } finally {
      await browser.close();
      server.close();
    }
  });
}

// Every kernel, at every precision of its tensors, compiles in the browser as its device
// receives it: Chromium's shader compiler checks more than naga does natively (the uniformity
// of control flow around barriers and subgroup operations, for one), and most kernels never
// run on this CPU adapter (the tiled and subgroup ones), so training would not show it. Texts
// that need a feature this device lacks (f16, subgroups) are counted, not compiled.
test("every kernel compiles in the browser", { timeout: 300_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => typeof window.resnetShaderSources === "function", null, { timeout: 240_000 });
    const report = await page.evaluate(async () => {
      const adapter = await navigator.gpu.requestAdapter();
      const wanted = ["shader-f16", "subgroups"].filter((f) => adapter.features.has(f));
      const device = await adapter.requestDevice({ requiredFeatures: wanted });
      const failures = [];
      const skipped = [];
      const compiled = new Set();
      const kernels = new Set();
      for (const [label, code, constants] of window.resnetShaderSources(adapter.info.subgroupMaxSize ?? 0)) {
        const kernel = label.split(" [")[0];
        kernels.add(kernel);
        const needs = [["enable f16;", "shader-f16"], ["enable subgroups;", "subgroups"]]
          .filter(([directive, feature]) => code.includes(directive) && !wanted.includes(feature));
        if (needs.length > 0) {
          skipped.push(label);
          continue;
        }
        const module = device.createShaderModule({ code, label });
        const info = await module.getCompilationInfo();
        const errors = info.messages.filter((m) => m.type === "error");
        if (errors.length > 0) {
          failures.push(`${label}: ${errors.map((e) => `${e.lineNum}:${e.linePos} ${e.message}`).join("; ")}`);
          continue;
        }
        // A kernel that sets overrides gets its pipeline built with them, as the app does:
        // only then are the override expressions evaluated (tile sides, workgroup sizes).
        if (Object.keys(constants).length > 0) {
          try {
            await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main", constants } });
          } catch (error) {
            failures.push(`${label} with ${JSON.stringify(constants)}: ${error.message}`);
            continue;
          }
        }
        compiled.add(kernel);
      }
      return { features: wanted, kernels: [...kernels], compiled: [...compiled], skipped, failures };
    });
    console.log(`kernels compiled in the browser: ${report.compiled.length} of ${report.kernels.length} (texts skipped for features it lacks: ${report.skipped.length}; offered: ${report.features.join(", ") || "none"})`);
    assert.deepEqual(report.failures, [], "kernels the browser rejects");
    // Every kernel compiled at one precision at least, but for the subgroup kernels where the
    // adapter offers no subgroups.
    const missing = report.kernels.filter((k) => !report.compiled.includes(k));
    const excused = report.features.includes("subgroups") ? [] : missing.filter((k) => k.includes("subgroup"));
    assert.deepEqual(missing, excused, "kernels compiled at no precision");
    assert.ok(report.kernels.length > 40, `only ${report.kernels.length} kernels listed`);
  } finally {
    await browser.close();
    server.close();
  }
});

// On a small screen every control can be reached: at 640 × 480 the side panel, and on a
// phone-sized page (390 × 844 CSS pixels at 2 device pixels each) the setup page, scroll to
// the checkpoint buttons and to Start, and a click on Start starts the run.
// Headless Chromium's device-scale emulation alone reports a canvas's device-pixel size in CSS
// pixels (the canvas would get half the pixels it needs); the browser-wide scale flag makes
// the two agree, as on a real phone.
for (const [what, options, extraFlags] of [
  ["640x480", { viewport: { width: 640, height: 480 } }, []],
  ["phone", { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 }, ["--force-device-scale-factor=2"]],
]) {
  test(`on a ${what} screen Start and the checkpoint buttons can be reached and Start starts`, { timeout: 300_000 }, async () => {
    const server = await serve();
    const browser = await launch(extraFlags);
    try {
      const page = await browser.newPage(options);
      const errors = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`http://127.0.0.1:${server.address().port}/`);
      const { status, waitFor, rectOf } = drive(page, errors);
      const ready = await waitFor("the WebGPU device", (s) => s.device === "ready" || s.device === "missing", 180_000);
      assert.equal(ready.device, "ready", `no WebGPU device: ${ready.message}`);
      const { width, height } = page.viewportSize();
      const inside = ([x, y, w, h]) => x >= 0 && y >= 0 && x + w <= width && y + h <= height;
      // Scrolls the control's panel (the wheel over its column) until the control is on screen
      // and stays put: egui animates a wheel scroll, so a rectangle read mid-animation moves on.
      // It has stayed put when a frame drawn after the mouse moved (an event, so a new frame)
      // still shows it there.
      const reach = async (name) => {
        for (let turn = 0; ; turn++) {
          const seen = await status();
          const rect = rectOf(seen, name);
          assert.ok(turn < 60, `"${name}" stays out of reach at ${JSON.stringify(rect)} in ${width} × ${height}`);
          if (inside(rect)) {
            await page.mouse.move(rect[0] + 1 + (turn % 2), rect[1] + 1);
            const later = await waitFor("a new frame", (s) => s.frames > seen.frames, 60_000);
            if (JSON.stringify(rectOf(later, name)) === JSON.stringify(rect)) return rect;
            continue;
          }
          await page.mouse.move(Math.min(Math.max(rect[0] + 10, 1), width - 1), height / 2);
          await page.mouse.wheel(0, rect[1] < 0 ? -120 : 120);
          await page.waitForTimeout(300);
        }
      };
      for (const name of ["Load", "Save"]) await reach(name);
      const [x, y, w, h] = await reach("Start");
      await page.screenshot({ path: path.join(shots, `web-${what}.png`) });
      await page.mouse.click(x + w / 2, y + h / 2);
      // The wait is the check: it fails the test, with the status, when the run does not start.
      await waitFor("the run to start", (s) => s.starting || s.run === "running", 60_000);
      assert.deepEqual(errors, [], "the page reports errors");
    } finally {
      await browser.close();
      server.close();
    }
  });
}
