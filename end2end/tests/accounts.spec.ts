import { type Browser, type BrowserContext, type Page } from "@playwright/test";
import { expect, test, addTodos, BASE, items, ready, syncStatus } from "./helpers";

// Accounts in the browser (CONTRACT.md "Accounts, workspaces, access"; DESIGN.md rules 23–24):
// signing up, inviting by link, editing together, removal, strangers, signing out, a second
// device, readers. Every person is a browser context of their own.

const run = Date.now().toString(36);
let people = 0;
function name(who: string): string {
  people += 1;
  return `${who}-${run}-${people}`;
}
const password = (username: string) => `${username} has a long password`;

/** A fresh context, signed out. */
async function stranger(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ baseURL: BASE });
  return { context, page: await context.newPage() };
}

/** Signs up on the page's own form (from the sign-in form's "Sign up" link). */
async function signUpOnThePage(page: Page, username: string) {
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await page.getByRole("link", { name: "Sign up" }).click();
  await ready(page);
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password(username));
  await page.getByRole("button", { name: "Sign up" }).click();
  // A new page, rendered for the new account: its own store opens.
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
  await ready(page);
}

async function signInOnThePage(page: Page, username: string) {
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await ready(page);
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password(username));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
  await ready(page);
}

/** The invite link an owner makes on the Members view, for `role`. */
async function inviteLink(page: Page, role = "member"): Promise<string> {
  await page.getByRole("link", { name: "Members" }).click();
  await ready(page);
  await page.getByLabel("Role", { exact: true }).selectOption(role);
  await page.getByRole("button", { name: "Invite" }).click();
  const link = page.getByRole("textbox", { name: "Invite link" });
  await expect(link).toHaveValue(/\/invite\/[A-Za-z0-9_-]{43}$/);
  return await link.inputValue();
}

/** `person` opens the invite link, signs up there and joins with the button. */
async function joinBySigningUp(page: Page, link: string, username: string) {
  await page.goto(link);
  await ready(page);
  await expect(page.getByText(/invites you to the workspace/)).toBeVisible();
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password(username));
  await page.getByRole("button", { name: "Sign up" }).click();
  // Back on the invite: joining takes the button, never the visit.
  await expect(page.getByRole("button", { name: "Join" })).toBeVisible();
  await page.getByRole("button", { name: "Join" }).click();
  await expect(page).toHaveURL(/\/w\/[0-9a-f-]{36}$/);
  await ready(page);
}

test("sign up, invite by link, edit together live, and removal while both are online", async ({ browser }) => {
  const ann = await stranger(browser);
  const annName = name("ann");
  await signUpOnThePage(ann.page, annName);
  // A new account's own workspace, with its Inbox.
  await expect(ann.page.locator("nav .list-item").first()).toContainText("Inbox");
  await addTodos(ann.page, "from ann");
  const inbox = new URL(ann.page.url()).pathname;
  const link = await inviteLink(ann.page);

  const bob = await stranger(browser);
  const bobName = name("bob");
  await joinBySigningUp(bob.page, link, bobName);
  await bob.page.locator("nav .list-item", { hasText: "Inbox" }).first().click();
  await expect(items(bob.page).locator("label")).toHaveText(["from ann"]);
  // Both edit, live.
  await addTodos(bob.page, "from bob");
  await ann.page.goto(inbox === "/" ? "/" : inbox);
  await ready(ann.page);
  await expect(items(ann.page).locator("label")).toHaveText(["from ann", "from bob"], { timeout: 5_000 });
  // (Once the reloaded page's store is in sync: this checks live editing, not the handshake.)
  await expect(syncStatus(ann.page)).toHaveAttribute("data-sync-state", "online");
  await addTodos(ann.page, "ann again");
  await expect(items(bob.page).locator("label")).toHaveText(["from ann", "from bob", "ann again"], { timeout: 5_000 });
  // History names the person beside the device.
  const bobsItem = items(ann.page).nth(1);
  await bobsItem.getByRole("button", { name: "Details of from bob" }).click();
  await bobsItem.getByRole("button", { name: "History" }).click();
  const history = ann.page.getByRole("dialog", { name: "History of “from bob”" });
  await expect(history.locator("li.history-entry")).toHaveCount(1);
  await expect(history.locator("li.history-entry")).toContainText(bobName);
  await ann.page.keyboard.press("Escape");
  // Her own too (the server names the pusher when it acknowledges).
  const annsItem = items(ann.page).nth(0);
  await annsItem.getByRole("button", { name: "Details of from ann" }).click();
  await annsItem.getByRole("button", { name: "History" }).click();
  const own = ann.page.getByRole("dialog", { name: "History of “from ann”" });
  await expect(own.locator("li.history-entry")).toContainText(annName);
  await ann.page.keyboard.press("Escape");

  // Ann removes Bob (confirmed in a dialog) while both are online: Bob's page says so.
  await ann.page.getByRole("link", { name: "Members" }).click();
  await ready(ann.page);
  const bobItem = ann.page.getByRole("listitem").filter({ hasText: bobName });
  await bobItem.getByRole("button", { name: "Remove" }).click();
  const dialog = ann.page.getByRole("dialog");
  await expect(dialog).toContainText(`Remove ${bobName}?`);
  await dialog.getByRole("button", { name: "Remove" }).click();
  await expect(ann.page.getByRole("listitem").filter({ hasText: bobName })).toHaveCount(0);
  await expect(bob.page.locator("[data-denied='removed']")).toContainText("no longer a member", { timeout: 5_000 });
  // What Bob's device holds stays on screen.
  await expect(items(bob.page).locator("label")).toHaveText(["from ann", "from bob", "ann again"]);
  await ann.context.close();
  await bob.context.close();
});

test("a stranger with a list's URL sees a sign-in form and nothing of the list", async ({ browser }) => {
  const ann = await stranger(browser);
  await signUpOnThePage(ann.page, name("ann"));
  await addTodos(ann.page, "a private to-do");
  const url = ann.page.url();
  const eve = await stranger(browser);
  const response = await eve.page.goto(url);
  expect(response?.status()).toBe(200);
  await expect(eve.page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await expect(eve.page.getByLabel("Username", { exact: true })).toBeVisible();
  const html = await eve.page.content();
  expect(html).not.toContain("a private to-do");
  expect(html).not.toContain("Inbox");
  await expect(eve.page.locator("section.todoapp")).toHaveCount(0);
  await ann.context.close();
  await eve.context.close();
});

test("sign-out pushes, says what is unsent, deletes the local data; the next person sees none of it; a second device syncs", async ({ browser }) => {
  const shared = await stranger(browser);
  const annName = name("ann");
  await signUpOnThePage(shared.page, annName);
  await addTodos(shared.page, "synced before signing out");
  await expect(syncStatus(shared.page)).toHaveAttribute("data-pending", "0");
  const annId = await shared.page.evaluate(async () => (await (await fetch("/api/auth/me")).json()).user.user_id);
  // Offline, one more: signing out cannot push it and says so.
  await shared.context.setOffline(true);
  await addTodos(shared.page, "made offline");
  await expect(syncStatus(shared.page)).toHaveAttribute("data-pending", "1");
  await shared.page.getByRole("button", { name: "Sign out" }).click();
  const unsent = shared.page.getByRole("dialog", { name: "Sign out with changes unsent?" });
  await expect(unsent).toContainText("1 change has not reached the server yet", { timeout: 10_000 });
  await expect(unsent.getByRole("button", { name: "Export unsent changes" })).toBeVisible();
  await unsent.getByRole("button", { name: "Cancel" }).click();
  // Back online: signing out pushes it first, then leaves.
  await shared.context.setOffline(false);
  await shared.page.getByRole("button", { name: "Sign out" }).click();
  await expect(shared.page.getByRole("heading", { name: "Sign in" })).toBeVisible({ timeout: 15_000 });
  // The account's local data is gone from this browser.
  const folders = await shared.page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const names: string[] = [];
    try {
      const tandem = await root.getDirectoryHandle("tandem");
      // @ts-ignore: entries() is there in Chromium
      for await (const [entry] of tandem.entries()) names.push(entry);
    } catch {}
    return names;
  });
  expect(folders).not.toContain(annId);
  // Another person signs up on the same browser: none of Ann's to-dos.
  await signUpOnThePage(shared.page, name("carol"));
  await expect(items(shared.page)).toHaveCount(0);
  expect(await shared.page.content()).not.toContain("synced before signing out");

  // Ann's second device signs in and has everything, the change made offline included.
  const laptop = await stranger(browser);
  await laptop.page.goto("/");
  await signInOnThePage(laptop.page, annName);
  await expect(items(laptop.page).locator("label")).toHaveText(["synced before signing out", "made offline"]);
  await shared.context.close();
  await laptop.context.close();
});

test("a reader sees the lists with no editing affordance", async ({ browser }) => {
  const ann = await stranger(browser);
  await signUpOnThePage(ann.page, name("ann"));
  await addTodos(ann.page, "read me");
  const link = await inviteLink(ann.page, "reader");
  const rita = await stranger(browser);
  await joinBySigningUp(rita.page, link, name("rita"));
  await rita.page.locator("nav .list-item", { hasText: "Inbox" }).first().click();
  await expect(items(rita.page).locator("label")).toHaveText(["read me"]);
  await expect(rita.page.locator("input.new-todo")).toHaveCount(0);
  await expect(items(rita.page).first().locator("input.toggle")).toBeDisabled();
  await expect(items(rita.page).first().locator("button.destroy")).toBeHidden();
  await expect(rita.page.locator("input.toggle-all")).toBeHidden();
  await expect(rita.page.getByRole("textbox", { name: "Device name" })).toHaveCount(0);
  // Nothing of hers waits to be sent: a reader's device writes no events.
  await expect(syncStatus(rita.page)).toHaveAttribute("data-pending", "0");
  await ann.context.close();
  await rita.context.close();
});

test("a member made a reader keeps what they wrote since, unsent, is told why, and still receives changes", async ({ browser }) => {
  const ann = await stranger(browser);
  await signUpOnThePage(ann.page, name("ann"));
  await addTodos(ann.page, "shared");
  const inbox = new URL(ann.page.url()).pathname;
  const link = await inviteLink(ann.page);
  const mia = await stranger(browser);
  const miaName = name("mia");
  await joinBySigningUp(mia.page, link, miaName);
  await mia.page.locator("nav .list-item", { hasText: "Inbox" }).first().click();
  await expect(items(mia.page).locator("label")).toHaveText(["shared"]);
  // Ann makes Mia a reader; Mia's open page still offers editing and she writes.
  await ann.page.reload();
  await ready(ann.page);
  await ann.page.getByLabel(`Role of ${miaName}`).selectOption("reader");
  await expect(ann.page.getByLabel(`Role of ${miaName}`)).toHaveValue("reader");
  await addTodos(mia.page, "written as a reader");
  const banner = mia.page.locator("[data-denied='read_only']");
  await expect(banner).toContainText("You can only read this workspace now", { timeout: 10_000 });
  await expect(banner).toContainText("1 change of yours is kept");
  await expect(mia.page.locator("[data-denied='removed']")).toHaveCount(0);
  // Her change stays on her screen; Ann's changes still reach her.
  await ann.page.goto(inbox);
  await ready(ann.page);
  await addTodos(ann.page, "from the owner");
  await expect(items(mia.page).filter({ hasText: "from the owner" })).toHaveCount(1, { timeout: 15_000 });
  await expect(items(mia.page).filter({ hasText: "written as a reader" })).toHaveCount(1);
  await expect(banner).toBeVisible();
  await expect(items(ann.page).locator("label")).toHaveText(["shared", "from the owner"]);
  await ann.context.close();
  await mia.context.close();
});

test("an owner deletes a workspace after confirming, its member is told, and an account left with none makes one", async ({ browser }) => {
  const ann = await stranger(browser);
  await signUpOnThePage(ann.page, name("ann"));
  // A second workspace, shared with Bob.
  await ann.page.getByRole("link", { name: "Members" }).click();
  await ready(ann.page);
  await ann.page.getByLabel("New workspace").fill("Trip");
  await ann.page.getByLabel("New workspace").press("Enter");
  await expect(ann.page).toHaveURL(/\/w\/[0-9a-f-]{36}$/);
  await ready(ann.page);
  await expect(ann.page.getByRole("combobox", { name: "Workspace" })).toContainText("Trip");
  await ann.page.getByRole("textbox", { name: "New list" }).fill("Packing");
  await ann.page.getByRole("textbox", { name: "New list" }).press("Enter");
  await addTodos(ann.page, "passport");
  const link = await inviteLink(ann.page);
  const bob = await stranger(browser);
  await joinBySigningUp(bob.page, link, name("bob"));
  await bob.page.locator("nav .list-item", { hasText: "Packing" }).first().click();
  await expect(items(bob.page).locator("label")).toHaveText(["passport"]);
  // Ann deletes it; Cancel first keeps it.
  await ann.page.reload();
  await ready(ann.page);
  await ann.page.getByRole("button", { name: "Delete workspace" }).click();
  const dialog = ann.page.getByRole("dialog", { name: "Delete “Trip”?" });
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(dialog).toHaveCount(0);
  await expect(ann.page.getByRole("button", { name: "Delete workspace" })).toBeFocused();
  await ann.page.getByRole("button", { name: "Delete workspace" }).click();
  await dialog.getByRole("button", { name: "Delete" }).click();
  await expect(ann.page).toHaveURL(/\/$/);
  await ready(ann.page);
  await expect(ann.page.getByRole("combobox", { name: "Workspace" })).not.toContainText("Trip");
  await expect(bob.page.locator("[data-denied='removed']")).toBeVisible({ timeout: 5_000 });
  await expect(items(bob.page).locator("label")).toHaveText(["passport"]);
  // Ann deletes her last one too: the page offers to make one.
  await ann.page.getByRole("link", { name: "Members" }).click();
  await ready(ann.page);
  await ann.page.getByRole("button", { name: "Delete workspace" }).click();
  await ann.page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await expect(ann.page.getByRole("heading", { name: "No workspace yet" })).toBeVisible();
  await ann.page.getByLabel("New workspace").fill("Fresh start");
  await ann.page.getByLabel("New workspace").press("Enter");
  await ready(ann.page);
  await expect(ann.page.getByRole("combobox", { name: "Workspace" })).toContainText("Fresh start");
  await ann.context.close();
  await bob.context.close();
});

test("signing out in one tab signs out every tab of the account", async ({ browser }) => {
  const person = await stranger(browser);
  await signUpOnThePage(person.page, name("tess"));
  const other = await person.context.newPage();
  await other.goto("/");
  await ready(other);
  await person.page.getByRole("button", { name: "Sign out" }).click();
  await expect(person.page.getByRole("heading", { name: "Sign in" })).toBeVisible({ timeout: 15_000 });
  await expect(other.getByRole("heading", { name: "Sign in" })).toBeVisible({ timeout: 15_000 });
  await person.context.close();
});

test("while a tab counts what is unsent before signing out, the account's other tabs take no input", async ({ browser }) => {
  const person = await stranger(browser);
  await signUpOnThePage(person.page, name("fay"));
  const list = new URL(person.page.url()).pathname;
  const other = await person.context.newPage();
  await other.goto(list);
  await ready(other);
  await person.context.setOffline(true);
  await addTodos(other, "unsent");
  await expect(syncStatus(person.page)).toHaveAttribute("data-pending", "1");
  await person.page.getByRole("button", { name: "Sign out" }).click();
  await expect(person.page.getByRole("dialog", { name: "Sign out with changes unsent?" })).toContainText("1 change has not reached the server yet", { timeout: 15_000 });
  // The other tab is frozen: what is typed there is not written after the count.
  await expect(other.locator("body")).toHaveAttribute("data-frozen", "signing-out");
  await other.locator("input.new-todo").click({ force: true });
  await other.keyboard.type("too late");
  await other.keyboard.press("Enter");
  await expect(items(other).locator("label")).toHaveText(["unsent"]);
  await expect(person.page.locator("body")).not.toHaveAttribute("data-frozen", /.*/);
  // Cancelling gives the other tab back.
  await person.page.getByRole("button", { name: "Cancel" }).click();
  await expect(other.locator("body")).not.toHaveAttribute("data-frozen", /.*/);
  await addTodos(other, "after cancel");
  await expect(items(other).locator("label")).toHaveText(["unsent", "after cancel"]);
  await person.context.close();
});

test("the settings list sessions with their last use, and sign out everywhere ends them", async ({ browser }) => {
  const one = await stranger(browser);
  const who = name("sam");
  await signUpOnThePage(one.page, who);
  const two = await stranger(browser);
  await two.page.goto("/");
  await signInOnThePage(two.page, who);
  await one.page.getByRole("link", { name: who }).click();
  await ready(one.page);
  await expect(one.page.locator("li.session")).toHaveCount(2);
  await expect(one.page.locator("li.session").first()).toContainText("Last used");
  await one.page.getByRole("button", { name: "Sign out everywhere" }).click();
  await expect(one.page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  // The other device's session ended too: its next page asks to sign in.
  await two.page.reload();
  await expect(two.page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await one.context.close();
  await two.context.close();
});

test("a session ended while offline keeps the outbox; signing in again sends it", async ({ browser }) => {
  const laptop = await stranger(browser);
  const who = name("otto");
  await signUpOnThePage(laptop.page, who);
  await addTodos(laptop.page, "before");
  await expect(syncStatus(laptop.page)).toHaveAttribute("data-pending", "0");
  const list = new URL(laptop.page.url()).pathname;
  await laptop.context.setOffline(true);
  await addTodos(laptop.page, "written offline");
  await expect(syncStatus(laptop.page)).toHaveAttribute("data-pending", "1");
  // Meanwhile, on another device, every session of the account ends.
  const phone = await stranger(browser);
  await phone.page.goto("/");
  await signInOnThePage(phone.page, who);
  await phone.page.getByRole("link", { name: who }).click();
  await ready(phone.page);
  await phone.page.getByRole("button", { name: "Sign out everywhere" }).click();
  await expect(phone.page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  // Back online: the laptop's sync is refused; it says so and keeps the change.
  await laptop.context.setOffline(false);
  await laptop.page.getByRole("button", { name: "Sync now" }).click();
  const banner = laptop.page.locator("[data-denied='signed_out']");
  await expect(banner).toContainText("Your session has ended", { timeout: 10_000 });
  await expect(banner).toContainText("1 change of yours is kept");
  await expect(items(laptop.page).locator("label")).toHaveText(["before", "written offline"]);
  // Signing in again: nothing lost, and it syncs.
  await banner.getByRole("link", { name: "Sign in again" }).click();
  await signInOnThePage(laptop.page, who);
  await expect(syncStatus(laptop.page)).toHaveAttribute("data-pending", "0", { timeout: 10_000 });
  await phone.page.goto(list);
  await signInOnThePage(phone.page, who);
  await expect(items(phone.page).locator("label")).toHaveText(["before", "written offline"]);
  await laptop.context.close();
  await phone.context.close();
});

test("the content security policy blocks nothing of Tandem's own: pages, the worker, the socket", async ({ browser }) => {
  const person = await stranger(browser);
  const violations: string[] = [];
  person.page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  await person.page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => console.error(`Refused to: ${e.violatedDirective} ${e.blockedURI}`));
  });
  await signUpOnThePage(person.page, name("cora"));
  await addTodos(person.page, "under a strict policy");
  await expect(syncStatus(person.page)).toHaveAttribute("data-sync-state", "online");
  await person.page.getByRole("link", { name: "Members" }).click();
  await ready(person.page);
  for (const path of ["/trash", "/settings", "/"]) {
    await person.page.goto(path);
    await ready(person.page);
  }
  expect(violations).toEqual([]);
  await person.context.close();
});
