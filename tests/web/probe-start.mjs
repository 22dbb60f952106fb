// Where the browser's first step spends its time: loads the page, chooses the small
// configuration, presses Start, and prints each change of the run's starting stage with the
// seconds since Start (and since the page loaded).
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const webRoot = path.resolve(here, "../../web");
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  const file = path.join(webRoot, url.pathname === "/" ? "index.html" : decodeURIComponent(url.pathname));
  if (!file.startsWith(webRoot) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return res.writeHead(404).end();
  res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan",
    "--use-vulkan=swiftshader", "--use-angle=swiftshader", "--no-sandbox", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const loaded = Date.now();
page.on("console", (m) => { if (process.env.VERBOSE) console.log(`console ${((Date.now() - loaded) / 1000).toFixed(1)}:`, m.text()); });
await page.goto(`http://127.0.0.1:${server.address().port}/`);
const status = () => page.evaluate(() => (window.resnetStatus ? window.resnetStatus() : {}));
const since = (t) => ((Date.now() - t) / 1000).toFixed(1);
let s = {};
while (s.device !== "ready") { s = await status(); await page.waitForTimeout(200); }
console.log(`device ready ${since(loaded)} s after load`);
const click = async (name) => {
  const st = await status();
  const scale = 1280 / st.screen[0];
  const [x, y, w, h] = st.controls[name].map((v) => v * scale);
  await page.mouse.click(x + w / 2, y + h / 2);
};
await click("Small and fast");
await page.waitForTimeout(500);
if (process.env.WAIT_ESTIMATE) {
  while ((await status()).estimated_images_per_second == null) await page.waitForTimeout(250);
  console.log(`estimate ready ${since(loaded)} s after load`);
}
const started = Date.now();
await click("Start");
let last = null;
for (;;) {
  s = await status();
  const stage = s.starting ?? (s.step_losses > 0 ? "stepping" : s.run);
  if (stage !== last) {
    console.log(`${since(started)} s after Start (${since(loaded)} after load): ${stage}`);
    last = stage;
  }
  if (s.step_losses >= 2) break;
  await page.waitForTimeout(100);
}
console.log(`first step reported: ${JSON.stringify(s.first_step)}; images/s ${s.images_per_second ?? "?"}`);
await browser.close();
server.close();
