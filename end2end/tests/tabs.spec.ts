import { type BrowserContext, type Page } from "@playwright/test";
import { expect, test, addTodos, freshList, items, ready, syncStatus } from "./helpers";

// Several tabs of one profile (DESIGN.md rule 18, docs/protocol.md "Several tabs"): one tab's
// worker owns the store (Web Lock), the others relay through a BroadcastChannel. Nothing here
// may use SharedWorker (Android Chrome has none): it is removed before any page script runs.
test.beforeEach(async ({ context }) => {
  await context.addInitScript(() => {
    // @ts-expect-error: removed on purpose
    delete window.SharedWorker;
  });
});


function store(page: Page) {
  return page.locator("body");
}

/** Opens `count` tabs on `path` at the same moment and waits until each is ready. */
async function tabs(context: BrowserContext, path: string, count: number): Promise<Page[]> {
  const pages = await Promise.all(Array.from({ length: count }, () => context.newPage()));
  await Promise.all(pages.map((p) => p.goto(path)));
  for (const p of pages) await ready(p);
  return pages;
}

/** The tab whose worker owns the store, and the others; exactly one owner. */
async function roles(pages: Page[]): Promise<{ owner: Page; relays: Page[] }> {
  await expect
    .poll(async () => {
      const seen = await Promise.all(pages.map((p) => store(p).getAttribute("data-store")));
      return seen.filter((s) => s === "owner").length === 1 && seen.every((s) => s === "owner" || s === "relay");
    })
    .toBe(true);
  const seen = await Promise.all(pages.map((p) => store(p).getAttribute("data-store")));
  return {
    owner: pages[seen.indexOf("owner")],
    relays: pages.filter((_, i) => seen[i] !== "owner"),
  };
}

/** Every event of the default workspace in the server's log. */
async function serverEvents(page: Page): Promise<{ event_type: string; aggregate_id: string }[]> {
  const events: { event_type: string; aggregate_id: string }[] = [];
  let cursor = 0;
  // The signed-in account's workspace (its first: where the suites work).
  const me = await (await page.request.get("/api/auth/me")).json();
  const workspace = me.workspaces[0].workspace_id;
  for (;;) {
    const response = await page.request.post("/api/sync/pull", {
      data: { device_id: "00000000-0000-7000-8000-0000000000aa", workspace_id: workspace, cursor },
    });
    expect(response.status()).toBe(200);
    const body = await response.json();
    events.push(...body.events);
    if (!body.has_more) return events;
    cursor = body.events[body.events.length - 1].seq;
  }
}

test("two tabs booting at the same moment elect one owner and both edit", async ({ context, page }) => {
  const list = await freshList(page, "Two tabs");
  await page.close();
  const [a, b] = await tabs(context, list, 2);
  await roles([a, b]);
  await addTodos(a, "from tab a");
  await addTodos(b, "from tab b");
  for (const p of [a, b]) {
    await expect(items(p).locator("label")).toHaveText(["from tab a", "from tab b"]);
    await expect(p.locator("span.todo-count")).toHaveText("2 items left");
    await expect(syncStatus(p)).toHaveAttribute("data-pending", "0");
  }
  // An edit in one tab shows in the other (change sets reach every tab).
  await items(b).first().locator("input.toggle").check();
  await expect(items(a).first()).toHaveClass(/completed/);
});

test("when the owner closes, another tab takes over and keeps working", async ({ context, page }) => {
  const list = await freshList(page, "Owner closes");
  await page.close();
  const pages = await tabs(context, list, 3);
  const { owner, relays } = await roles(pages);
  await addTodos(owner, "before");
  const took = Date.now();
  await owner.close();
  await roles(relays);
  const handoffMs = Date.now() - took;
  console.log(`handoff: another tab serves ${handoffMs} ms after the owner closed`);
  expect(handoffMs).toBeLessThan(5_000);
  for (const p of relays) await addTodos(p, `after in ${relays.indexOf(p)}`);
  for (const p of relays) {
    await expect(items(p).locator("label")).toHaveText(["before", "after in 0", "after in 1"]);
    await expect(syncStatus(p)).toHaveAttribute("data-pending", "0");
  }
});

test("the owner reloads: it comes back as a relay and both tabs keep working", async ({ context, page }) => {
  const list = await freshList(page, "Owner reloads");
  await page.close();
  const pages = await tabs(context, list, 2);
  const { owner, relays } = await roles(pages);
  const other = relays[0];
  await owner.reload();
  await ready(owner);
  const after = await roles([owner, other]);
  expect(after.owner).toBe(other);
  await addTodos(owner, "from the reloaded tab");
  await addTodos(other, "from the new owner");
  for (const p of [owner, other]) {
    await expect(items(p).locator("label")).toHaveText(["from the reloaded tab", "from the new owner"]);
  }
});

test("ten quick writes in a relay tab during a handoff all land exactly once", async ({ context, page }) => {
  const list = await freshList(page, "Writes in a handoff");
  await page.close();
  const pages = await tabs(context, list, 2);
  const { owner, relays } = await roles(pages);
  const relay = relays[0];
  const titles = Array.from({ length: 10 }, (_, i) => `item ${i}`);
  await addTodos(relay, ...titles);
  const ids = await items(relay).evaluateAll((lis) => lis.map((li) => li.getAttribute("data-todo-id")));
  // The owner goes away while the relay ticks all ten, one click after another.
  const closing = owner.close();
  for (let i = 0; i < 10; i++) await items(relay).nth(i).locator("input.toggle").click();
  await closing;
  await expect(relay.locator("body")).toHaveAttribute("data-store", "owner");
  await expect(items(relay).and(relay.locator(".completed"))).toHaveCount(10);
  await expect(relay.locator("span.todo-count")).toHaveText("0 items left");
  await expect(syncStatus(relay)).toHaveAttribute("data-pending", "0");
  // Exactly once: one TodoCompleted per item in the server's log, and the same after a reload.
  const events = await serverEvents(relay);
  for (const id of ids) {
    const completed = events.filter((e) => e.aggregate_id === id && e.event_type === "TodoCompleted");
    expect(completed, `item ${id}`).toHaveLength(1);
  }
  await relay.reload();
  await ready(relay);
  await expect(items(relay).and(relay.locator(".completed"))).toHaveCount(10);
});

test("an owner's worker that fails is ended and started again; the other tab takes over and nothing waits", async ({ context, page }) => {
  const list = await freshList(page, "Owner fails");
  await page.close();
  const pages = await tabs(context, list, 2);
  const { owner, relays } = await roles(pages);
  const other = relays[0];
  await addTodos(owner, "before");
  // What a trapped wasm leaves: a worker that hears nothing any more, and an uncaught error.
  const worker = owner.workers().find((w) => w.url().includes("/worker.js"));
  expect(worker, "the owner tab's worker").toBeTruthy();
  await worker!.evaluate(() => {
    self.onmessage = null;
    setTimeout(() => {
      throw new Error("simulated failure");
    }, 0);
  });
  // Typed right away: sent to the failed worker, or kept until the next one serves.
  await addTodos(owner, "typed during the failure");
  const after = await roles([owner, other]);
  expect(after.owner).toBe(other);
  await addTodos(other, "from the new owner");
  for (const p of [owner, other]) {
    await expect(items(p).locator("label")).toHaveText(["before", "typed during the failure", "from the new owner"]);
    await expect(syncStatus(p)).toHaveAttribute("data-pending", "0");
  }
  await expect(owner.getByRole("alert")).toHaveCount(0);
  // Each once in the server's log.
  const ids = await items(other).evaluateAll((lis) => lis.map((li) => li.getAttribute("data-todo-id")));
  const events = await serverEvents(other);
  for (const id of ids) {
    expect(events.filter((e) => e.aggregate_id === id && e.event_type === "TodoCreated"), `item ${id}`).toHaveLength(1);
  }
});

/** Posts `message` on the account's channel between tabs' workers, as another tab's worker would. */
async function fromAnotherTab(page: Page, message: object) {
  const me = await (await page.request.get("/api/auth/me")).json();
  await page.evaluate(
    ([name, text]) => {
      const channel = new BroadcastChannel(name);
      channel.postMessage(text);
      channel.close();
    },
    [`tandem-tabs:${me.user.user_id}`, JSON.stringify(message)],
  );
}

test("a tab of a newer build makes an open tab reload, once; an older one does not", async ({ page }) => {
  await freshList(page, "Newer build");
  await ready(page);
  await fromAnotherTab(page, { type: "hello", tab: "a-tab-of-an-older-build", build: "1-older" });
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
  const reloaded = page.waitForEvent("load");
  await fromAnotherTab(page, { type: "hello", tab: "a-tab-of-a-newer-build", build: "99999999999-newer" });
  await reloaded;
  await ready(page);
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBeUndefined();
  await expect(page.getByRole("alert")).toHaveCount(0);
  // The same build again (it is not what the server serves): no second reload, an offer.
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 2));
  await fromAnotherTab(page, { type: "hello", tab: "a-tab-of-a-newer-build", build: "99999999999-newer" });
  await expect(page.getByRole("alert")).toContainText("A new version of Tandem is ready");
  await expect(page.getByRole("alert").getByRole("button", { name: "Reload" })).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(2);
});

test("a relay never follows an owner of another build", async ({ context, page }) => {
  const list = await freshList(page, "Owner of another build");
  await page.close();
  const pages = await tabs(context, list, 2);
  const { owner, relays } = await roles(pages);
  const relay = relays[0];
  // An owner of an older build, with a greater epoch than the real one.
  await fromAnotherTab(relay, { type: "owner", tab: "an-older-owner", epoch: 9_000_000_000_000, memory: false, build: "1-older" });
  await expect(relay.getByRole("status").filter({ hasText: "older version of Tandem" })).toBeVisible();
  await addTodos(relay, "still served");
  await expect(items(owner).locator("label")).toHaveText(["still served"]);
});
