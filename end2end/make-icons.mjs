// Renders Tandem's app icons (public/icons/*.png) from SVG with the test browser, so the PNGs
// in the repository can be made again: `cd end2end && node make-icons.mjs`.
// "any" icons have rounded corners on the brand green; the maskable one is full-bleed with the
// tick inside the central 80% safe zone (https://w3c.github.io/manifest/#icon-masks).
import { chromium } from "@playwright/test";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "public", "icons");
const tick = (scale) =>
  `<g transform="translate(32 32) scale(${scale}) translate(-32 -32)"><path d="M18 33l9 9 19-20" fill="none" stroke="#fff" stroke-width="7" stroke-linecap="round" stroke-linejoin="round"/></g>`;
const any = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#2f6f4e"/>${tick(1)}</svg>`;
const maskable = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#2f6f4e"/>${tick(0.72)}</svg>`;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium" });
const page = await browser.newPage();
for (const [name, svg, size] of [
  ["icon-192.png", any, 192],
  ["icon-512.png", any, 512],
  ["maskable-512.png", maskable, 512],
  ["apple-touch-icon.png", maskable, 180],
]) {
  await page.setViewportSize({ width: size, height: size });
  await page.setContent(`<html><body style="margin:0;background:transparent">${svg.replace("<svg ", `<svg width="${size}" height="${size}" `)}</body></html>`);
  await page.locator("svg").screenshot({ path: path.join(out, name), omitBackground: true });
  console.log(`${name}: ${size}x${size}`);
}
await browser.close();
