import { expect, test, addTodos, freshList, items, ready } from "./helpers";

// The TodoMVC application specification (tastejs/todomvc app-spec.md) as CONTRACT.md binds it,
// each behaviour in a list of its own.

test.describe("TodoMVC", () => {
  test("on open the new-todo input is focused, and main and footer are hidden while the list is empty", async ({ page }) => {
    await freshList(page);
    await page.reload();
    await ready(page);
    await expect(page.locator("input.new-todo")).toBeFocused();
    await expect(page.locator("input.new-todo")).toHaveCount(1);
    await expect(page.locator(".main")).toBeHidden();
    await expect(page.locator("footer.footer")).toBeHidden();
  });

  test("Enter adds a trimmed to-do at the end and clears the input; an empty title is ignored", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "  buy milk  ", "bake bread");
    await expect(items(page).locator("label")).toHaveText(["buy milk", "bake bread"]);
    await expect(page.locator("input.new-todo")).toHaveValue("");
    await page.locator("input.new-todo").fill("    ");
    await page.locator("input.new-todo").press("Enter");
    await expect(page.locator("span.todo-count")).toHaveText("2 items left");
    await expect(items(page)).toHaveCount(2);
    await expect(page.locator(".main")).toBeVisible();
    await expect(page.locator("footer.footer")).toBeVisible();
  });

  test("the counter says item or items, with the number in strong", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "one");
    await expect(page.locator("span.todo-count")).toHaveText("1 item left");
    await expect(page.locator("span.todo-count strong")).toHaveText("1");
    await addTodos(page, "two");
    await expect(page.locator("span.todo-count")).toHaveText("2 items left");
    await items(page).nth(0).locator("input.toggle").check();
    await expect(page.locator("span.todo-count")).toHaveText("1 item left");
  });

  test("a to-do is completed and reopened with its checkbox", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "one", "two");
    await items(page).nth(1).locator("input.toggle").check();
    await expect(items(page).nth(1)).toHaveClass(/completed/);
    await expect(items(page).nth(0)).not.toHaveClass(/completed/);
    await items(page).nth(1).locator("input.toggle").uncheck();
    await expect(items(page).nth(1)).not.toHaveClass(/completed/);
  });

  test("toggle-all completes everything, then reopens everything, and follows the items", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "one", "two", "three");
    const toggleAll = page.locator("input.toggle-all");
    await page.getByText("Mark all as complete").click();
    for (const i of [0, 1, 2]) await expect(items(page).nth(i)).toHaveClass(/completed/);
    await expect(toggleAll).toBeChecked();
    await page.getByText("Mark all as complete").click();
    for (const i of [0, 1, 2]) await expect(items(page).nth(i)).not.toHaveClass(/completed/);
    await expect(toggleAll).not.toBeChecked();
    // Checking every item by hand checks toggle-all too.
    for (const i of [0, 1, 2]) await items(page).nth(i).locator("input.toggle").check();
    await expect(toggleAll).toBeChecked();
    await items(page).nth(0).locator("input.toggle").uncheck();
    await expect(toggleAll).not.toBeChecked();
  });

  test("double-click edits; Enter saves trimmed, blur saves, Escape cancels, empty deletes", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "one", "two", "three");
    const first = items(page).nth(0);
    await first.locator("label").dblclick();
    await expect(first).toHaveClass(/editing/);
    const edit = first.locator("input.edit");
    await expect(edit).toBeFocused();
    await expect(edit).toHaveValue("one");
    // While editing, the other controls of the item are hidden.
    await expect(first.locator("input.toggle")).toBeHidden();
    await edit.fill("  uno  ");
    await edit.press("Enter");
    await expect(first).not.toHaveClass(/editing/);
    await expect(first.locator("label")).toHaveText("uno");

    await items(page).nth(1).locator("label").dblclick();
    await items(page).nth(1).locator("input.edit").fill("dos");
    await page.locator("input.new-todo").click(); // blur
    await expect(items(page).nth(1).locator("label")).toHaveText("dos");

    await items(page).nth(2).locator("label").dblclick();
    await items(page).nth(2).locator("input.edit").fill("nothing");
    await items(page).nth(2).locator("input.edit").press("Escape");
    await expect(items(page).nth(2).locator("label")).toHaveText("three");
    await expect(items(page).nth(2)).not.toHaveClass(/editing/);

    await items(page).nth(0).locator("label").dblclick();
    await items(page).nth(0).locator("input.edit").fill("   ");
    await items(page).nth(0).locator("input.edit").press("Enter");
    await expect(items(page).locator("label")).toHaveText(["dos", "three"]);
  });

  test("every action works from the keyboard alone", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "one", "two");
    // From the new-to-do input, Tab reaches toggle-all, then the first item's controls.
    await page.locator("input.new-todo").focus();
    await page.keyboard.press("Tab");
    await expect(page.locator("input.toggle-all")).toBeFocused();
    await page.keyboard.press("Tab");
    const first = items(page).nth(0);
    await expect(first.locator("input.toggle")).toBeFocused();
    await page.keyboard.press("Tab");
    await expect(first.locator("label")).toBeFocused();
    // A visible focus ring on what has focus.
    const outline = await first.locator("label").evaluate((el) => getComputedStyle(el).outlineStyle);
    expect(outline).not.toBe("none");
    await page.keyboard.press("Enter");
    await expect(first).toHaveClass(/editing/);
    await expect(first.locator("input.edit")).toBeFocused();
    await page.keyboard.press("End");
    await page.keyboard.type(" more");
    await page.keyboard.press("Enter");
    await expect(first.locator("label")).toHaveText("one more");
    await expect(first.locator("label")).toBeFocused();
    await page.keyboard.press("Shift+Tab");
    await expect(first.locator("input.toggle")).toBeFocused();
    await page.keyboard.press("Space");
    await expect(first).toHaveClass(/completed/);
    // Alt+Down moves it and keeps the focus on it: a second move follows.
    await page.keyboard.press("Alt+ArrowDown");
    await expect(items(page).locator("label")).toHaveText(["two", "one more"]);
    await expect(items(page).nth(1).locator("input.toggle")).toBeFocused();
    await page.keyboard.press("Alt+ArrowUp");
    await expect(items(page).locator("label")).toHaveText(["one more", "two"]);
    await expect(items(page).nth(0).locator("input.toggle")).toBeFocused();
    // Tab goes on to the item's details and destroy buttons.
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    await expect(first.getByRole("button", { name: "Details of one more" })).toBeFocused();
    await page.keyboard.press("Tab");
    await expect(first.locator("button.destroy")).toBeFocused();
    await page.keyboard.press("Enter");
    await expect(items(page).locator("label")).toHaveText(["two"]);
  });

  test("the destroy button deletes a to-do", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "one", "two");
    await items(page).nth(0).hover();
    await items(page).nth(0).locator("button.destroy").click();
    await expect(items(page).locator("label")).toHaveText(["two"]);
  });

  test("clear completed is shown only when something is completed, and removes what is", async ({ page }) => {
    await freshList(page);
    await addTodos(page, "one", "two", "three");
    await expect(page.locator("button.clear-completed")).toHaveCount(0);
    await items(page).nth(0).locator("input.toggle").check();
    await items(page).nth(2).locator("input.toggle").check();
    await expect(page.locator("button.clear-completed")).toBeVisible();
    await page.locator("button.clear-completed").click();
    await expect(items(page).locator("label")).toHaveText(["two"]);
    await expect(page.locator("button.clear-completed")).toHaveCount(0);
  });

  test("filters are links with their own URL; back and reload keep them", async ({ page }) => {
    const list = await freshList(page);
    await addTodos(page, "one", "two", "three");
    await items(page).nth(1).locator("input.toggle").check();
    await expect(page.locator("ul.filters a.selected")).toHaveText("All");

    await page.locator("ul.filters a", { hasText: "Active" }).click();
    await expect(page).toHaveURL(`${list}/active`);
    await expect(items(page).locator("label")).toHaveText(["one", "three"]);
    await expect(page.locator("ul.filters a.selected")).toHaveText("Active");

    await page.locator("ul.filters a", { hasText: "Completed" }).click();
    await expect(page).toHaveURL(`${list}/completed`);
    await expect(items(page).locator("label")).toHaveText(["two"]);

    await page.goBack();
    await expect(page).toHaveURL(`${list}/active`);
    await expect(items(page).locator("label")).toHaveText(["one", "three"]);

    await page.reload();
    await ready(page);
    await expect(page.locator("ul.filters a.selected")).toHaveText("Active");
    await expect(items(page).locator("label")).toHaveText(["one", "three"]);

    // A completion made under a filter takes the item out of it. (A click, not `check()`:
    // the item leaves at once, and `check()` would find the next one in its place unchecked
    // and click that too.)
    await items(page).filter({ hasText: "one" }).locator("input.toggle").click();
    await expect(items(page).locator("label")).toHaveText(["three"]);

    await page.locator("ul.filters a", { hasText: "All" }).click();
    await expect(page).toHaveURL(list);
    await expect(items(page)).toHaveCount(3);
  });

  test("to-dos survive a reload", async ({ page }) => {
    const list = await freshList(page);
    await addTodos(page, "one", "two");
    await items(page).nth(0).locator("input.toggle").check();
    await page.reload();
    await ready(page);
    await expect(page).toHaveURL(list);
    await expect(items(page).locator("label")).toHaveText(["one", "two"]);
    await expect(items(page).nth(0)).toHaveClass(/completed/);
  });
});
