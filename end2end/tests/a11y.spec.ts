import AxeBuilder from "@axe-core/playwright";
import { type Page } from "@playwright/test";
import { expect, test, addTodos, device, freshList, items, ready, syncStatus } from "./helpers";

// An axe-core scan of every screen, in light and in dark: no serious or critical violation.
// (Minor and moderate ones are printed, not failed on.)

async function scan(page: Page, screen: string, scheme: "light" | "dark", include?: string) {
  let builder = new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]);
  if (include) builder = builder.include(include);
  const { violations } = await builder.analyze();
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of violations.filter((v) => !bad.includes(v))) {
    console.log(`${screen} (${scheme}): ${v.impact} ${v.id}: ${v.help} (${v.nodes.length})`);
  }
  const described = bad.map((v) => `${v.impact} ${v.id}: ${v.help}\n  ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join("\n  ")}`);
  expect(described, `${screen} in ${scheme}`).toEqual([]);
}

for (const scheme of ["light", "dark"] as const) {
  test(`every screen passes axe-core with no serious or critical violation (${scheme})`, async ({ browser, page }) => {
    test.setTimeout(90_000);
    await page.emulateMedia({ colorScheme: scheme });
    const list = await freshList(page, `Scanned ${scheme}`);
    await addTodos(page, "oat milk", "call Ana tomorrow", "an old one");
    await items(page).nth(2).locator("input.toggle").check();
    await expect(syncStatus(page)).toHaveAttribute("data-pending", "0");
    await scan(page, "list", scheme);

    await items(page).nth(0).getByRole("button", { name: "Details of oat milk" }).click();
    await items(page).nth(0).getByLabel("Notes").fill("the barista kind");
    await scan(page, "detail", scheme);

    await items(page).nth(0).getByRole("button", { name: "History" }).click();
    const history = page.getByRole("dialog", { name: "History of “oat milk”" });
    await expect(history.locator("li.history-entry").first()).toBeVisible();
    await scan(page, "history", scheme);
    await page.keyboard.press("Escape");
    await expect(history).toBeHidden();

    await items(page).nth(2).getByRole("button", { name: "Delete an old one" }).click();
    await page.getByRole("link", { name: "Trash" }).click();
    await expect(page.getByRole("heading", { name: "Trash" })).toBeVisible();
    await expect(page.locator("li.trash-item").first()).toBeVisible();
    await scan(page, "trash", scheme);

    await page.goto(list);
    await ready(page);
    await page.getByRole("link", { name: "Members" }).click();
    await expect(page.getByRole("heading", { name: /Members/ })).toBeVisible();
    await scan(page, "members", scheme);

    await page.goto("/settings");
    await ready(page);
    await scan(page, "settings", scheme);

    await page.goto("/inspect");
    await ready(page);
    await scan(page, "inspector", scheme);

    // The conflict dialog: the same to-do edited on two devices apart.
    await page.goto(list);
    await ready(page);
    const other = await device(browser);
    await other.page.emulateMedia({ colorScheme: scheme });
    await other.page.goto(list);
    await ready(other.page);
    await expect(items(other.page).locator("label")).toHaveText(["oat milk", "call Ana"]);
    for (const d of [{ context: page.context(), page }, other]) await d.context.setOffline(true);
    for (const [p, title] of [[page, "oat milk, large"], [other.page, "oat milk, small"]] as const) {
      await expect(syncStatus(p)).toHaveAttribute("data-sync-state", "offline");
      await items(p).nth(0).locator("label").dblclick();
      await items(p).nth(0).locator("input.edit").fill(title);
      await items(p).nth(0).locator("input.edit").press("Enter");
    }
    for (const d of [{ context: page.context(), page }, other]) await d.context.setOffline(false);
    const badge = items(page).nth(0).getByRole("button", { name: "Resolve conflict" });
    await expect(badge).toBeVisible({ timeout: 15_000 });
    await badge.click();
    await expect(page.getByRole("dialog")).toBeVisible();
    await scan(page, "conflict dialog", scheme);
    await page.keyboard.press("Escape");
    await other.context.close();

    // Sign in: a browser with no session.
    const stranger = await browser.newContext({ baseURL: new URL(page.url()).origin });
    const signIn = await stranger.newPage();
    await signIn.emulateMedia({ colorScheme: scheme });
    await signIn.goto("/");
    await expect(signIn.getByRole("heading", { name: "Sign in" })).toBeVisible();
    await scan(signIn, "sign in", scheme);
    await stranger.close();
  });
}
