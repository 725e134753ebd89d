import { expect, test, freshList, ready } from "./helpers";
import type { Locator, Page } from "@playwright/test";

// tastejs/todomvc's own cross-framework suite (cypress/e2e/spec.cy.js, 29 tests), ported to
// Playwright test for test, with the same context and test names, so Tandem's to-do pane is
// checked like any TodoMVC app. What differs, and why:
// - "Visiting the app" is opening a list of its own: the suite shares one server, so each test
//   starts in a fresh, empty list (the original starts each test with empty storage).
// - The original's localStorage checks are skipped for apps that keep their data elsewhere
//   (like its Vue example); here the data is in the worker's OPFS databases, so "Persistence"
//   reloads the page and checks the state, as the original does after its storage check.
// - `:visible` filtering: Tandem's filters render only the matching items, so `visibleTodos`
//   are the items of the list that are visible.

const TODO_ITEM_ONE = "buy some cheese";
const TODO_ITEM_TWO = "feed the cat";
const TODO_ITEM_THREE = "book a doctors appointment";

const s = {
  newTodo: ".new-todo",
  todoItems: ".todo-list li",
  count: "span.todo-count",
  main: ".main",
  footer: ".footer",
  toggleAll: ".toggle-all",
  clearCompleted: ".clear-completed",
  filters: ".filters",
  filterItems: ".filters li a",
};

const todoItems = (page: Page) => page.locator(s.todoItems);
const visibleTodos = (page: Page) => page.locator(`${s.todoItems}:visible`);

/** The original's `cy.createTodo`: type, Enter, and return the new item. */
async function createTodo(page: Page, title: string): Promise<Locator> {
  const before = await todoItems(page).count();
  await page.locator(s.newTodo).pressSequentially(title);
  await page.locator(s.newTodo).press("Enter");
  await expect(todoItems(page)).toHaveCount(before + 1);
  return todoItems(page).nth(before);
}

/** The original's `cy.createDefaultTodos`. */
async function createDefaultTodos(page: Page): Promise<Locator> {
  for (const title of [TODO_ITEM_ONE, TODO_ITEM_TWO, TODO_ITEM_THREE]) await createTodo(page, title);
  await expect(todoItems(page)).toHaveCount(3);
  return todoItems(page);
}

test.describe("TodoMVC - tandem", () => {
  test.beforeEach(async ({ page }) => {
    await freshList(page);
    // The original checks its "todos" heading; a list's heading is its name.
    await expect(page.locator("h1.list-title")).toBeVisible();
    // The original's first check of every test: nothing carried over.
    await expect(todoItems(page)).toHaveCount(0);
  });

  test.describe("When page is initially opened", () => {
    test("should focus on the todo input field", async ({ page }) => {
      await expect(page.locator(":focus")).toHaveClass(/new-todo/);
    });
  });

  test.describe("No Todos", () => {
    test("starts with nothing", async ({ page }) => {
      await expect(todoItems(page)).toHaveCount(0);
    });

    test("should hide #main and #footer", async ({ page }) => {
      await expect(todoItems(page)).toHaveCount(0);
      // "some apps remove elements from the DOM but some just hide them": the contract
      // (CONTRACT.md, "hidden when the list is empty") and the original both accept hidden;
      // Tandem hides them, so they exist and are not visible.
      await expect(page.locator(s.main)).toHaveCount(1);
      await expect(page.locator(s.main)).toBeHidden();
      await expect(page.locator(s.footer)).toHaveCount(1);
      await expect(page.locator(s.footer)).toBeHidden();
    });
  });

  test.describe("New Todo", () => {
    test("should allow me to add todo items", async ({ page }) => {
      await page.locator(s.newTodo).pressSequentially(TODO_ITEM_ONE);
      await page.locator(s.newTodo).press("Enter");
      await expect(todoItems(page).nth(0).locator("label")).toContainText(TODO_ITEM_ONE);
      await page.locator(s.newTodo).pressSequentially(TODO_ITEM_TWO);
      await page.locator(s.newTodo).press("Enter");
      await expect(todoItems(page).nth(1).locator("label")).toContainText(TODO_ITEM_TWO);
    });

    test("should clear text input field when an item is added", async ({ page }) => {
      await page.locator(s.newTodo).pressSequentially(TODO_ITEM_ONE);
      await page.locator(s.newTodo).press("Enter");
      await expect(todoItems(page)).toHaveCount(1);
      await expect(page.locator(s.newTodo)).toHaveValue("");
    });

    test("should append new items to the bottom of the list", async ({ page }) => {
      const todos = await createDefaultTodos(page);
      await expect(page.locator(s.count)).toContainText("3");
      await expect(todos.nth(0).locator("label")).toContainText(TODO_ITEM_ONE);
      await expect(todos.nth(1).locator("label")).toContainText(TODO_ITEM_TWO);
      await expect(todos.nth(2).locator("label")).toContainText(TODO_ITEM_THREE);
    });

    test("should trim text input", async ({ page }) => {
      await createTodo(page, `    ${TODO_ITEM_ONE}    `);
      await expect(todoItems(page).nth(0).locator("label")).toHaveText(TODO_ITEM_ONE);
    });

    test("should show #main and #footer when items added", async ({ page }) => {
      await createTodo(page, TODO_ITEM_ONE);
      await expect(page.locator(s.main)).toBeVisible();
      await expect(page.locator(s.footer)).toBeVisible();
    });
  });

  test.describe("Mark all as completed", () => {
    test.beforeEach(async ({ page }) => {
      await createDefaultTodos(page);
    });

    test("should allow me to mark all items as completed", async ({ page }) => {
      await page.locator(s.toggleAll).check({ force: true });
      for (const i of [0, 1, 2]) await expect(todoItems(page).nth(i)).toHaveClass(/completed/);
    });

    test("should allow me to clear the complete state of all items", async ({ page }) => {
      await page.locator(s.toggleAll).check({ force: true });
      for (const i of [0, 1, 2]) await expect(todoItems(page).nth(i)).toHaveClass(/completed/);
      await page.locator(s.toggleAll).uncheck({ force: true });
      for (const i of [0, 1, 2]) await expect(todoItems(page).nth(i)).not.toHaveClass(/completed/);
    });

    test("complete all checkbox should update state when items are completed / cleared", async ({ page }) => {
      await page.locator(s.toggleAll).check({ force: true });
      await expect(page.locator(s.toggleAll)).toBeChecked();
      const firstTodo = todoItems(page).nth(0);
      await firstTodo.locator(".toggle").uncheck({ force: true });
      await expect(page.locator(s.toggleAll)).not.toBeChecked();
      await firstTodo.locator(".toggle").check({ force: true });
      await expect(page.locator(s.toggleAll)).toBeChecked();
    });
  });

  test.describe("Item", () => {
    test("should allow me to mark items as complete", async ({ page }) => {
      const firstTodo = await createTodo(page, TODO_ITEM_ONE);
      const secondTodo = await createTodo(page, TODO_ITEM_TWO);
      await firstTodo.locator(".toggle").check();
      await expect(firstTodo).toHaveClass(/completed/);
      await expect(secondTodo).not.toHaveClass(/completed/);
      await secondTodo.locator(".toggle").check();
      await expect(firstTodo).toHaveClass(/completed/);
      await expect(secondTodo).toHaveClass(/completed/);
    });

    test("should allow me to un-mark items as complete", async ({ page }) => {
      const firstTodo = await createTodo(page, TODO_ITEM_ONE);
      const secondTodo = await createTodo(page, TODO_ITEM_TWO);
      await firstTodo.locator(".toggle").check();
      await expect(firstTodo).toHaveClass(/completed/);
      await expect(secondTodo).not.toHaveClass(/completed/);
      await firstTodo.locator(".toggle").uncheck();
      await expect(firstTodo).not.toHaveClass(/completed/);
      await expect(secondTodo).not.toHaveClass(/completed/);
    });

    test("should allow me to edit an item", async ({ page }) => {
      await createDefaultTodos(page);
      await visibleTodos(page).nth(1).locator("label").dblclick();
      const edit = visibleTodos(page).nth(1).locator(".edit");
      await expect(edit).toHaveValue(TODO_ITEM_TWO);
      await edit.clear();
      await edit.pressSequentially("buy some sausages");
      await edit.press("Enter");
      await expect(visibleTodos(page).nth(0)).toContainText(TODO_ITEM_ONE);
      await expect(visibleTodos(page).nth(1)).toContainText("buy some sausages");
      await expect(visibleTodos(page).nth(2)).toContainText(TODO_ITEM_THREE);
    });
  });

  test.describe("Editing", () => {
    test.beforeEach(async ({ page }) => {
      await createDefaultTodos(page);
    });

    test("should hide other controls when editing", async ({ page }) => {
      await todoItems(page).nth(1).locator("label").dblclick();
      await expect(todoItems(page).nth(1).locator(".toggle")).toBeHidden();
      await expect(todoItems(page).nth(1).locator("label")).toBeHidden();
    });

    test("should save edits on blur", async ({ page }) => {
      await todoItems(page).nth(1).locator("label").dblclick();
      const edit = todoItems(page).nth(1).locator(".edit");
      await edit.clear();
      await edit.pressSequentially("buy some sausages");
      await edit.blur();
      await expect(visibleTodos(page).nth(0)).toContainText(TODO_ITEM_ONE);
      await expect(visibleTodos(page).nth(1)).toContainText("buy some sausages");
      await expect(visibleTodos(page).nth(2)).toContainText(TODO_ITEM_THREE);
    });

    test("should trim entered text", async ({ page }) => {
      await todoItems(page).nth(1).locator("label").dblclick();
      const edit = todoItems(page).nth(1).locator(".edit");
      await edit.press("ControlOrMeta+a");
      await edit.press("Backspace");
      await edit.pressSequentially("    buy some sausages    ");
      await edit.press("Enter");
      await expect(visibleTodos(page).nth(0)).toContainText(TODO_ITEM_ONE);
      await expect(visibleTodos(page).nth(1).locator("label")).toHaveText("buy some sausages");
      await expect(visibleTodos(page).nth(2)).toContainText(TODO_ITEM_THREE);
    });

    test("should remove the item if an empty text string was entered", async ({ page }) => {
      await todoItems(page).nth(1).locator("label").dblclick();
      const edit = todoItems(page).nth(1).locator(".edit");
      await edit.clear();
      await edit.press("Enter");
      await expect(visibleTodos(page)).toHaveCount(2);
    });

    test("should cancel edits on escape", async ({ page }) => {
      await visibleTodos(page).nth(1).locator("label").dblclick();
      const edit = todoItems(page).nth(1).locator(".edit");
      await edit.press("ControlOrMeta+a");
      await edit.press("Backspace");
      await edit.pressSequentially("foo");
      await edit.press("Escape");
      await expect(visibleTodos(page).nth(0)).toContainText(TODO_ITEM_ONE);
      await expect(visibleTodos(page).nth(1)).toContainText(TODO_ITEM_TWO);
      await expect(visibleTodos(page).nth(2)).toContainText(TODO_ITEM_THREE);
    });
  });

  test.describe("Counter", () => {
    test("should display the current number of todo items", async ({ page }) => {
      await createTodo(page, TODO_ITEM_ONE);
      await expect(page.locator(s.count)).toContainText("1");
      await createTodo(page, TODO_ITEM_TWO);
      await expect(page.locator(s.count)).toContainText("2");
    });
  });

  test.describe("Clear completed button", () => {
    test.beforeEach(async ({ page }) => {
      await createDefaultTodos(page);
    });

    test("should display the correct text", async ({ page }) => {
      await todoItems(page).nth(0).locator(".toggle").check();
      await expect(page.locator(s.clearCompleted)).toContainText("Clear completed");
    });

    test("should remove completed items when clicked", async ({ page }) => {
      await todoItems(page).nth(1).locator(".toggle").check();
      await page.locator(s.clearCompleted).click();
      await expect(todoItems(page)).toHaveCount(2);
      await expect(todoItems(page).nth(0)).toContainText(TODO_ITEM_ONE);
      await expect(todoItems(page).nth(1)).toContainText(TODO_ITEM_THREE);
    });

    test("should be hidden when there are no items that are completed", async ({ page }) => {
      await todoItems(page).nth(1).locator(".toggle").check();
      await expect(page.locator(s.clearCompleted)).toBeVisible();
      await page.locator(s.clearCompleted).click();
      await expect(page.locator(s.clearCompleted)).toBeHidden();
    });
  });

  test.describe("Persistence", () => {
    test("should persist its data", async ({ page }) => {
      const firstTodo = await createTodo(page, TODO_ITEM_ONE);
      const secondTodo = await createTodo(page, TODO_ITEM_TWO);
      await firstTodo.locator(".toggle").check();
      const testState = async () => {
        await expect(firstTodo).toContainText(TODO_ITEM_ONE);
        await expect(firstTodo).toHaveClass(/completed/);
        await expect(secondTodo).toContainText(TODO_ITEM_TWO);
        await expect(secondTodo).not.toHaveClass(/completed/);
      };
      await testState();
      await page.reload();
      await ready(page);
      await testState();
    });
  });

  test.describe("Routing", () => {
    test.beforeEach(async ({ page }) => {
      await createDefaultTodos(page);
    });

    test("should allow me to display active items", async ({ page }) => {
      await todoItems(page).nth(1).locator(".toggle").check();
      await expect(todoItems(page).nth(1)).toHaveClass(/completed/);
      await page.locator(s.filterItems, { hasText: "Active" }).click();
      await expect(visibleTodos(page)).toHaveCount(2);
      await expect(visibleTodos(page).nth(0)).toContainText(TODO_ITEM_ONE);
      await expect(visibleTodos(page).nth(1)).toContainText(TODO_ITEM_THREE);
    });

    test("should respect the back button", async ({ page }) => {
      await todoItems(page).nth(1).locator(".toggle").check();
      await expect(todoItems(page).nth(1)).toHaveClass(/completed/);
      await page.locator(s.filterItems, { hasText: "All" }).click();
      await expect(visibleTodos(page)).toHaveCount(3);
      await page.locator(s.filterItems, { hasText: "Active" }).click();
      await page.locator(s.filterItems, { hasText: "Completed" }).click();
      await expect(visibleTodos(page)).toHaveCount(1);
      await page.goBack();
      await expect(visibleTodos(page)).toHaveCount(2);
      await page.goBack();
      await expect(visibleTodos(page)).toHaveCount(3);
    });

    test("should allow me to display completed items", async ({ page }) => {
      await visibleTodos(page).nth(1).locator(".toggle").check();
      await expect(todoItems(page).nth(1)).toHaveClass(/completed/);
      await page.locator(s.filters).getByText("Completed").click();
      await expect(visibleTodos(page)).toHaveCount(1);
    });

    test("should allow me to display all items", async ({ page }) => {
      await visibleTodos(page).nth(1).locator(".toggle").check();
      await expect(todoItems(page).nth(1)).toHaveClass(/completed/);
      await page.locator(s.filters).getByText("Active").click();
      await page.locator(s.filters).getByText("Completed").click();
      await page.locator(s.filters).getByText("All").click();
      await expect(visibleTodos(page)).toHaveCount(3);
    });

    test("should highlight the currently applied filter", async ({ page }) => {
      await expect(page.locator(s.filterItems, { hasText: "All" })).toHaveClass(/selected/);
      await page.locator(s.filterItems, { hasText: "Active" }).click();
      await expect(page.locator(s.filterItems, { hasText: "Active" })).toHaveClass(/selected/);
      await page.locator(s.filterItems, { hasText: "Completed" }).click();
      await expect(page.locator(s.filterItems, { hasText: "Completed" })).toHaveClass(/selected/);
    });
  });
});
