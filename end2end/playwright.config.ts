import { defineConfig } from "@playwright/test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

// The release server built by `make build`, started on its own port with a fresh data dir.
const port = Number(process.env.E2E_PORT ?? 3100);
const server = process.env.TANDEM_SERVER_BIN ?? path.join(os.homedir(), ".cache/tandem/target/release/server");
// `make e2e` passes a fresh data dir; run by hand, a new temp dir is made.
const dataDir = process.env.E2E_DATA_DIR ?? (process.env.E2E_DATA_DIR = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-e2e-")));

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: true,
  retries: 0,
  reporter: process.env.CI ? [["list"]] : [["list"], ["html", { open: "never" }]],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "retain-on-failure",
    // The suites' shared page runs without the service worker (its fetches would bypass
    // `page.route` and `setOffline`); tests/pwa.spec.ts and the demo allow it.
    serviceWorkers: "block",
    launchOptions: {
      // Debian's Chromium: Playwright's own browser download cannot work here (TOOLCHAIN.md).
      executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
      args: [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
  webServer: {
    command: `${server} serve --addr 127.0.0.1:${port} --data-dir ${dataDir} --sign-up open`,
    cwd: "..",
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 30_000,
    stdout: "pipe",
    stderr: "pipe",
  },
});
