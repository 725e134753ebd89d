import { execFile, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { expect, test, addTodos, addUser, device, E2E_USER, freePort, freshList, healthy, items, ready, startServer, stopped, syncStatus, SERVER_BIN } from "./helpers";

// Tandem behind Debian's nginx on loopback, as docs/self-host.md sets it up: the `map` and
// `location /` blocks are read from deploy/nginx/tandem.conf (the file the docs give), so what
// is documented is what runs here. https is not needed on loopback.

const NGINX = process.env.NGINX_BIN ?? "/usr/sbin/nginx";

/** An nginx.conf serving `proxyPort` with the documented blocks, proxying to `upstream`. */
function nginxConf(dir: string, proxyPort: number, upstream: number): string {
  const documented = fs.readFileSync(path.join(__dirname, "../../deploy/nginx/tandem.conf"), "utf8");
  const map = documented.match(/^map \$http_upgrade[\s\S]*?^\}/m)?.[0];
  const location = documented.match(/^ {4}location \/ \{[\s\S]*?^ {4}\}/m)?.[0];
  if (!map || !location) throw new Error("deploy/nginx/tandem.conf lost its map or location block");
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `${t}_temp_path ${dir}/${t};`).join("\n  ");
  return `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  ${temp}
  ${map}
  server {
    listen 127.0.0.1:${proxyPort};
    server_name _;
${location.replace("127.0.0.1:3000", `127.0.0.1:${upstream}`)}
  }
}
`;
}

async function startNginx(dir: string): Promise<ChildProcess> {
  const nginx = spawn(NGINX, ["-p", dir, "-c", path.join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  let said = "";
  nginx.stderr?.on("data", (d) => (said += d));
  nginx.once("exit", (code) => {
    if (code) console.log(`nginx exited ${code}: ${said}`);
  });
  return nginx;
}

test("through Debian's nginx as a reverse proxy: sign-in, pages, sync and live updates work, and server doctor finds no problem", async ({ browser }) => {
  const port = await freePort();
  const proxyPort = await freePort();
  const base = `http://127.0.0.1:${proxyPort}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-proxied-"));
  const nginxDir = fs.mkdtempSync(path.join(os.tmpdir(), "tandem-nginx-"));
  // nginx's workers run as another user when it is started as root: they need to reach the
  // temp dirs inside.
  fs.chmodSync(nginxDir, 0o755);
  fs.writeFileSync(path.join(nginxDir, "nginx.conf"), nginxConf(nginxDir, proxyPort, port));
  const flags = ["--public-url", base, "--trusted-proxy", "127.0.0.1"];
  // Behind a proxy the first account cannot sign up on the page (the client is not known to
  // be this machine): it is made on the command line, as docs/self-host.md says.
  await addUser(dataDir, E2E_USER);
  const server = startServer(port, dataDir, { args: flags });
  const nginx = await startNginx(nginxDir);
  try {
    await healthy(port);
    await healthy(proxyPort);
    const a = await device(browser, base);
    const b = await device(browser, base);
    await a.page.goto(`${base}/`);
    await ready(a.page);
    const list = await freshList(a.page, "Through nginx");
    await addTodos(a.page, "first");
    await expect(syncStatus(a.page)).toHaveAttribute("data-pending", "0");
    await b.page.goto(`${base}${list}`);
    await ready(b.page);
    await expect(syncStatus(b.page)).toHaveAttribute("data-sync-state", "online");
    await expect(items(b.page).locator("label")).toHaveText(["first"]);
    // Live both ways: the announcement crosses nginx on the WebSocket.
    await addTodos(a.page, "live from A");
    await expect(items(b.page).locator("label")).toHaveText(["first", "live from A"], { timeout: 2_000 });
    await addTodos(b.page, "live from B");
    await expect(items(a.page).locator("label")).toHaveText(["first", "live from A", "live from B"], { timeout: 2_000 });
    // The proxy named the client: requests went through it.
    expect(fs.readFileSync(path.join(nginxDir, "access.log"), "utf8")).toContain("/api/sync/live");

    const { stdout } = await promisify(execFile)(SERVER_BIN, ["doctor", "--addr", `127.0.0.1:${port}`, "--data-dir", dataDir, ...flags, "--through", base], {
      cwd: path.join(__dirname, "../.."),
    });
    expect(stdout).toContain("passes the WebSocket upgrade");
    expect(stdout).toContain("127.0.0.1 is trusted to name the client");
    expect(stdout).toContain("no problem found (0 warning(s))");
    expect(stdout).not.toContain("PROBLEM");
    await a.context.close();
    await b.context.close();
  } finally {
    await stopped(nginx);
    await stopped(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(nginxDir, { recursive: true, force: true });
  }
});
