import { expect, test, addTodos, freshList, items, ready, signIn, syncStatus } from "./helpers";

test("lists: New list makes a list with its own URL, and each list keeps its own to-dos", async ({ page }) => {
  const first = await freshList(page, "Groceries");
  await addTodos(page, "milk");
  const second = await freshList(page, "Work");
  expect(second).not.toBe(first);
  await expect(items(page)).toHaveCount(0);
  await addTodos(page, "report");
  await page.getByRole("navigation", { name: "Lists" }).getByRole("link", { name: /Groceries/ }).last().click();
  await expect(page).toHaveURL(first);
  await expect(items(page).locator("label")).toHaveText(["milk"]);
  await expect(page.locator("nav a[aria-current=page]")).toContainText("Groceries");
});

test("quick add reads a trailing due date before Enter, and Escape keeps the words", async ({ page }) => {
  await freshList(page);
  const input = page.locator("input.new-todo");
  await input.fill("report 2031-12-01");
  // Dates read as people say them, the ISO date in `datetime` and on hover.
  await expect(page.locator(".quick-due time")).toHaveText("Mon 1 Dec 2031");
  await input.press("Enter");
  await expect(items(page).locator("label")).toHaveText(["report"]);
  await expect(items(page).locator("time.due")).toHaveText("Mon 1 Dec 2031");
  await expect(items(page).locator("time.due")).toHaveAttribute("datetime", "2031-12-01");
  await expect(items(page).locator("time.due")).toHaveAttribute("title", "2031-12-01");

  await input.fill("buy milk tomorrow");
  await expect(page.locator(".quick-due")).toBeVisible();
  await input.press("Escape");
  await expect(page.locator(".quick-due")).toHaveCount(0);
  await input.press("Enter");
  await expect(items(page).nth(1).locator("label")).toHaveText("buy milk tomorrow");
  await expect(items(page).nth(1).locator("time.due")).toHaveCount(0);
  await addTodos(page, "call Ana tomorrow", "water plants today");
  await expect(items(page).nth(2).locator("time.due")).toHaveText("Tomorrow");
  await expect(items(page).nth(3).locator("time.due")).toHaveText("Today");
  await expect(items(page).nth(3).locator("time.due")).not.toHaveClass(/overdue/);

  // A date already past is overdue (decided in the page, with the viewer's calendar).
  await addTodos(page, "file taxes 2020-04-15");
  await expect(items(page).nth(4).locator("time.due")).toHaveClass(/overdue/);
  await expect(items(page).nth(4).locator("time.due")).toHaveText("Wed 15 Apr 2020");
});

test("Alt+Up and Alt+Down move the focused to-do", async ({ page }) => {
  await freshList(page);
  await addTodos(page, "one", "two", "three");
  await items(page).nth(2).locator("input.toggle").focus();
  await page.keyboard.press("Alt+ArrowUp");
  await expect(items(page).locator("label")).toHaveText(["one", "three", "two"]);
  await items(page).nth(0).locator("input.toggle").focus();
  await page.keyboard.press("Alt+ArrowDown");
  await expect(items(page).locator("label")).toHaveText(["three", "one", "two"]);
  await page.reload();
  await ready(page);
  await expect(items(page).locator("label")).toHaveText(["three", "one", "two"]);
});

test("Alt+arrows inside an item's notes keep their native meaning; the item stays put", async ({ page }) => {
  await freshList(page);
  await addTodos(page, "one", "two");
  await items(page).nth(1).getByRole("button", { name: "Details of two" }).click();
  const notes = items(page).nth(1).getByLabel("Notes");
  await notes.fill("first line\nsecond line");
  await page.keyboard.press("Alt+ArrowUp");
  // The next command's reply comes after any move the key could have asked for.
  await addTodos(page, "three");
  await expect(items(page).locator(".view > label")).toHaveText(["one", "two", "three"]);
});

test("a held Enter makes one list, and Enter ending an IME composition adds nothing", async ({ page }) => {
  await freshList(page);
  const name = `Held ${Date.now().toString(36)}`;
  const newList = page.getByRole("textbox", { name: "New list" });
  await newList.fill(name);
  // A held key: the first keydown, then repeats before the reply.
  await newList.evaluate((el) => {
    for (const repeat of [false, true, true, true]) {
      el.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", repeat, bubbles: true }));
    }
  });
  await expect(page.locator("h1.list-title")).toHaveText(name);
  // A composition's Enter (e.g. picking a word in a Japanese IME) is the IME's, not an add.
  const input = page.locator("input.new-todo");
  await input.fill("にほんご");
  await input.evaluate((el) => el.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", isComposing: true, bubbles: true })));
  await input.fill("にほんご 2");
  await input.press("Enter");
  // This add's reply comes after every command sent before it (the worker answers in order).
  await expect(items(page).locator("label")).toHaveText(["にほんご 2"]);
  await expect(page.locator("nav .list-name", { hasText: name })).toHaveCount(1);
});

test("a to-do is reordered by dragging it onto another", async ({ page }) => {
  await freshList(page);
  await addTodos(page, "one", "two", "three");
  await items(page).nth(2).dragTo(items(page).nth(0));
  await expect(items(page).locator("label")).toHaveText(["three", "one", "two"]);
  await items(page).nth(0).dragTo(items(page).nth(2));
  await expect(items(page).locator("label")).toHaveText(["one", "two", "three"]);
});

test("a list page loads without a failed request (its icon included)", async ({ page }) => {
  await freshList(page);
  const failed: string[] = [];
  page.on("response", (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
  });
  // The browser asks for the page's icon after it loads (for /favicon.ico when none is named).
  const icon = page.waitForResponse((r) => r.url().includes("/favicon"));
  await page.reload();
  await ready(page);
  const answer = await icon;
  expect(`${answer.status()} ${new URL(answer.url()).pathname}`).toBe("200 /favicon.svg");
  expect(failed).toEqual([]);
});

test("? lists the keyboard shortcuts", async ({ page }) => {
  await freshList(page);
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("?");
  await expect(page.getByRole("dialog", { name: "Keyboard shortcuts" })).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(page.getByRole("dialog", { name: "Keyboard shortcuts" })).toHaveCount(0);
});

test("bad input: a title or list name over the limit shows a message and records nothing", async ({ page }) => {
  await freshList(page);
  await addTodos(page, "fine");
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
  const input = page.locator("input.new-todo");
  await input.fill("x".repeat(1_001));
  await input.press("Enter");
  await expect(page.locator(".todoapp [role=alert]")).toContainText("at most 1000");
  await expect(items(page)).toHaveCount(1);
  // The text stays, to be shortened.
  await expect(input).toHaveValue("x".repeat(1_001));

  // So does a failed edit's: the box stays open with what was typed.
  await items(page).nth(0).locator("label").dblclick();
  const edit = items(page).nth(0).locator("input.edit");
  await edit.fill("y".repeat(1_001));
  await edit.press("Enter");
  await expect(page.locator(".todoapp [role=alert]")).toContainText("at most 1000");
  await expect(items(page).nth(0)).toHaveClass(/editing/);
  await expect(items(page).nth(0).locator("input.edit")).toHaveValue("y".repeat(1_001));
  await items(page).nth(0).locator("input.edit").press("Escape");
  await expect(items(page).locator("label")).toHaveText(["fine"]);

  // And a failed rename's.
  await page.getByRole("button", { name: "Rename list" }).click();
  const name = page.getByRole("textbox", { name: "List name" });
  await name.fill("r".repeat(201));
  await name.press("Enter");
  await expect(page.locator(".todoapp [role=alert]")).toContainText("at most 200");
  await expect(page.getByRole("textbox", { name: "List name" })).toHaveValue("r".repeat(201));
  await page.getByRole("textbox", { name: "List name" }).press("Escape");

  const newList = page.getByRole("textbox", { name: "New list" });
  await newList.fill("n".repeat(201));
  await newList.press("Enter");
  await expect(page.locator("nav [role=alert]")).toContainText("at most 200");
  // Nothing was recorded: no event waits to be sent, no list was made.
  await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
  await expect(page.locator("nav .list-name", { hasText: "nnnn" })).toHaveCount(0);
});

test("a worker that cannot start shows a banner instead of a dead page", async ({ page }) => {
  await page.route("**/worker.js*", (route) => route.abort());
  await page.goto("/");
  await expect(page.getByRole("alert")).toContainText("Tandem cannot keep your to-dos in this window");
  // The server's rendering is still there to read.
  await expect(page.locator("section.todoapp")).toBeVisible();
});

test("a window without OPFS says so at once and runs from memory", async ({ page }) => {
  // The worker as some private windows run it: no navigator.storage.getDirectory.
  await page.route("**/worker.js*", (route) =>
    route.fulfill({
      contentType: "text/javascript",
      body: `delete StorageManager.prototype.getDirectory;
import init, { worker_main } from "/worker/tandem_worker.js";
await init({ module_or_path: "/worker/tandem_worker_bg.wasm" });
const account = new URLSearchParams(self.location.search).get("account");
await worker_main(account, "tandem/" + account);`,
    }),
  );
  await page.goto("/");
  await expect(page.getByRole("alert")).toContainText("runs from memory", { timeout: 3_000 });
  await expect(page.locator("section.todoapp")).toBeVisible();
  // (storage.spec.ts: it works, syncs, and asks before closing with unsent edits.)
});

test("at 360 px the page fits the screen and stays usable", async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  await signIn(context);
  const page = await context.newPage();
  await freshList(page);
  await addTodos(page, "a to-do with a rather long title that has to wrap on a small screen");
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width).toBeLessThanOrEqual(360);
  for (const control of [page.locator("input.new-todo"), items(page).nth(0).locator("input.toggle"), items(page).nth(0).locator("button.destroy"), page.getByRole("button", { name: "Sync now" })]) {
    await expect(control).toBeInViewport();
    await expect(control).toBeVisible();
  }
  await items(page).nth(0).locator("button.destroy").tap();
  await expect(items(page)).toHaveCount(0);
  await context.close();
});

test("unknown pages answer 404 with a way back; an unknown list renders a shell", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("link", { name: "Back to Tandem" })).toBeVisible();
  const list = await page.goto("/lists/01900000-0000-7000-8000-000000000000");
  expect(list?.status()).toBe(200);
  await expect(page.locator("h1.list-title")).toHaveText("This list is not here yet");
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the server renders the list", async ({ page, browser }) => {
    // A list with to-dos, made by a device with JavaScript.
    const writer = await browser.newContext({ javaScriptEnabled: true });
    await signIn(writer);
    const w = await writer.newPage();
    const list = await freshList(w, "Read without JS");
    await addTodos(w, "readable");
    await expect(syncStatus(w)).toHaveAttribute("data-pending", "0");
    await writer.close();

    await page.goto(list);
    await expect(page).toHaveTitle("Tandem");
    await expect(page.locator("h1.list-title")).toHaveText("Read without JS");
    await expect(items(page).locator("label")).toHaveText(["readable"]);
    await expect(page.locator("span.todo-count")).toHaveText("1 item left");
    await expect(page.locator("body")).not.toHaveAttribute("data-ready", /.*/);
    await expect(syncStatus(page)).toHaveAttribute("data-sync-state", "connecting");
  });
});

test("item detail: notes, a due date and a move to another list", async ({ page }) => {
  const suffix = Date.now().toString(36);
  const work = await freshList(page, `Work ${suffix}`);
  const home = await freshList(page, `Home ${suffix}`);
  await addTodos(page, "paint the fence");
  const item = items(page).nth(0);
  await item.getByRole("button", { name: "Details of paint the fence" }).click();
  await item.getByLabel("Notes").fill("white, two coats");
  await item.getByLabel("Due").fill("2031-05-01");
  await expect(item.locator("time.due")).toHaveText("Thu 1 May 2031");
  // One format in the row and the detail.
  await expect(item.locator("time.due-spoken")).toHaveText("Thu 1 May 2031");
  await page.reload();
  await ready(page);
  await items(page).nth(0).getByRole("button", { name: "Details of paint the fence" }).click();
  await expect(items(page).nth(0).getByLabel("Notes")).toHaveValue("white, two coats");

  await items(page).nth(0).getByLabel("List").selectOption({ label: `Work ${suffix}` });
  await expect(items(page)).toHaveCount(0);
  await expect(page.locator("main")).not.toContainText("paint the fence");
  await page.goto(work);
  await ready(page);
  await expect(items(page).locator("label")).toHaveText(["paint the fence"]);
  expect(home).not.toBe(work);
});

test("a list is renamed in place, and a deletion can be undone", async ({ page }) => {
  const url = await freshList(page, "Errands");
  await page.getByRole("button", { name: "Rename list" }).click();
  const name = page.getByRole("textbox", { name: "List name" });
  await expect(name).toBeFocused();
  await name.fill("Weekend errands");
  await name.press("Enter");
  await expect(page.locator("h1.list-title")).toHaveText("Weekend errands");
  await expect(page.locator("nav .list-name", { hasText: "Weekend errands" })).toHaveCount(1);

  // Deleted at once (the page opens the first list), with a moment to take it back.
  await page.getByRole("button", { name: "Delete list" }).click();
  await expect(page.locator(".undo-bar")).toContainText("“Weekend errands” was deleted");
  await expect(page.locator("nav .list-name", { hasText: "Weekend errands" })).toHaveCount(0);
  await expect(page).not.toHaveURL(url);
  await page.locator(".undo-bar").getByRole("button", { name: "Undo" }).click();
  await expect(page.locator(".undo-bar")).toHaveCount(0);
  await expect(page.locator("nav .list-name", { hasText: "Weekend errands" })).toHaveCount(1);
  await expect(page).toHaveURL(url);
  // The bar goes by itself after a few seconds.
  await page.getByRole("button", { name: "Delete list" }).click();
  await expect(page.locator("nav .list-name", { hasText: "Weekend errands" })).toHaveCount(0);
  await expect(page.locator(".undo-bar")).toHaveCount(1);
  await expect(page.locator(".undo-bar")).toHaveCount(0, { timeout: 10_000 });
});

test("deleting lists: several in a row each happen, a page elsewhere stays, and a reload keeps them", async ({ page }) => {
  const suffix = Date.now().toString(36);
  const a = await freshList(page, `A ${suffix}`);
  const b = await freshList(page, `B ${suffix}`);
  const c = await freshList(page, `C ${suffix}`);
  // Delete C, open B and delete it too, before C's undo moment has passed.
  await page.getByRole("button", { name: "Delete list" }).click();
  await expect(page.locator("nav .list-name", { hasText: `C ${suffix}` })).toHaveCount(0);
  const open = async (name: string, url: string) => {
    await page.getByRole("navigation", { name: "Lists" }).getByRole("link", { name: new RegExp(name) }).click();
    await expect(page).toHaveURL(url);
    await expect(page.locator("h1.list-title")).toHaveText(name);
  };
  await open(`B ${suffix}`, b);
  await page.getByRole("button", { name: "Delete list" }).click();
  await expect(page.locator("nav .list-name", { hasText: `B ${suffix}` })).toHaveCount(0);
  await expect(page.locator(".undo-bar")).toHaveCount(2);
  // Open A: when the undo moments pass, nothing pulls the page away from it.
  await open(`A ${suffix}`, a);
  await expect(page.locator(".undo-bar")).toHaveCount(0, { timeout: 10_000 });
  await expect(page).toHaveURL(a);
  await expect(page.locator("h1.list-title")).toHaveText(`A ${suffix}`);
  // Closing the page at once loses nothing: the deletion was recorded before it showed.
  await page.getByRole("button", { name: "Delete list" }).click();
  await expect(page.locator("nav .list-name", { hasText: `A ${suffix}` })).toHaveCount(0);
  await page.reload();
  await ready(page);
  for (const gone of [a, b, c]) {
    const name = gone === a ? "A" : gone === b ? "B" : "C";
    await expect(page.locator("nav .list-name", { hasText: `${name} ${suffix}` })).toHaveCount(0);
  }
});
