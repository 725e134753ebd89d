import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect, test, addTodos, device, freePort, freshList, healthy, items, ready, startServer, stopped } from "./helpers";

// Two server processes on one PostgreSQL database (the cluster `make e2e` starts:
// TANDEM_TEST_PG), as behind a load balancer: two devices, each a browser context talking to
// its own process, see each other's edits live — the devices spec of sync.spec.ts across
// processes.

test("two devices on two server processes sharing one PostgreSQL database see each other's edits live within 2 s", async ({ browser }) => {
  const database = process.env.TANDEM_TEST_PG;
  if (!database) {
    throw new Error("TANDEM_TEST_PG names the PostgreSQL cluster (make e2e starts one: scripts/pg-cluster.sh)");
  }
  const env = { TANDEM_DATABASE_URL: database };
  const ports = [await freePort(), await freePort()];
  const dirs = ports.map(() => fs.mkdtempSync(path.join(os.tmpdir(), "tandem-process-")));
  const servers = ports.map((port, i) => startServer(port, dirs[i], { env }));
  try {
    await Promise.all(ports.map((port) => healthy(port)));
    const [baseA, baseB] = ports.map((port) => `http://127.0.0.1:${port}`);
    const a = await device(browser, baseA);
    const b = await device(browser, baseB);

    const list = await freshList(a.page, "Across processes");
    await b.page.goto(list);
    await ready(b.page);
    await expect(b.page.locator("h1.list-title")).toHaveText("Across processes");

    await addTodos(a.page, "from A");
    await expect(items(b.page).locator("label")).toHaveText(["from A"], { timeout: 2_000 });

    await addTodos(b.page, "from B");
    await expect(items(a.page).locator("label")).toHaveText(["from A", "from B"], { timeout: 2_000 });

    await items(b.page).nth(0).locator("input.toggle").check();
    await expect(items(a.page).nth(0)).toHaveClass(/completed/, { timeout: 2_000 });
    await expect(a.page.locator("span.todo-count")).toHaveText("1 item left", { timeout: 2_000 });

    // Each process renders the list from the shared views (a reload is a server render).
    for (const { page } of [a, b]) {
      await page.reload();
      await ready(page);
      await expect(items(page).locator("label")).toHaveText(["from A", "from B"]);
    }
    // The data dirs hold nothing: the state is in the database.
    for (const dir of dirs) {
      expect(fs.readdirSync(dir).filter((f) => f.endsWith(".db"))).toEqual([]);
    }
    await a.context.close();
    await b.context.close();
  } finally {
    await Promise.all(servers.map((server) => stopped(server)));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
});
