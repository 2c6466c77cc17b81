import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { waitForHydration } from "./hydration";

// Screenshots of the main pages, kept as test artifacts (end2end/artifacts).
const shots = join(__dirname, "..", "artifacts");

test("creates a project through the UI without a reload and lists it", async ({ page }) => {
  await page.goto("/");
  await waitForHydration(page);
  await page.evaluate(() => ((window as any).__noReload = true));

  await page.getByTestId("project-name").fill("e2e-vision");
  await page.getByLabel("Description").fill("Created from the browser");
  await page.getByLabel("Tags").fill("e2e, vision");
  await page.getByTestId("create-project").click();

  const list = page.getByTestId("project-list");
  await expect(list.getByText("e2e-vision")).toBeVisible();
  await expect(list.getByText("Created from the browser")).toBeVisible();
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);
  await page.screenshot({ path: `${shots}/projects.png`, fullPage: true });

  // An invalid name is refused inline, naming the rule.
  await page.getByTestId("project-name").fill("Bad Name");
  await page.getByTestId("create-project").click();
  await expect(page.getByTestId("create-error")).toContainText("lowercase letters");
  // A taken name is refused inline too.
  await page.getByTestId("project-name").fill("e2e-vision");
  await page.getByTestId("create-project").click();
  await expect(page.getByTestId("create-error")).toContainText("already exists");
});

test("opens a run created through the API", async ({ page, request }) => {
  const project = await request.post("/api/v1/default/projects/create", {
    data: { name: "e2e-runs", description: "runs from the API" },
  });
  expect(project.status()).toBe(201);
  const created = await request.post("/api/v1/default/e2e-runs/runs", {
    data: { name: "resnet-baseline", tags: ["baseline"], content: "version: 1.1\nkind: component\ninputs:\n  - {name: lr, type: float, value: 0.01}\nrun:\n  kind: job\n  container:\n    image: python:3.11\n    command: [python, train.py, \"--lr={{ lr }}\"]\n" },
  });
  expect(created.status()).toBe(201);
  const run = await created.json();
  const queued = await request.post(`/api/v1/default/e2e-runs/runs/${run.uuid}/statuses`, {
    data: { condition: { type: "compiled", reason: "E2E", message: "compiled by the test" } },
  });
  expect(queued.status()).toBe(200);

  await page.goto("/default/e2e-runs");
  await expect(page.getByTestId("project-title")).toHaveText("e2e-runs");
  const table = page.getByTestId("runs-table");
  await expect(table.getByText("resnet-baseline")).toBeVisible();
  await expect(table.locator("[data-status=compiled]")).toBeVisible();
  await page.screenshot({ path: `${shots}/project.png`, fullPage: true });

  await waitForHydration(page);
  await table.getByText("resnet-baseline").click();
  await expect(page).toHaveURL(new RegExp(`/default/e2e-runs/runs/${run.uuid}$`));
  await expect(page.getByTestId("run-title")).toHaveText("resnet-baseline");
  const timeline = page.getByTestId("status-timeline");
  await expect(timeline.locator("[data-status=created]")).toBeVisible();
  await expect(timeline.locator("[data-status=compiled]")).toBeVisible();
  await expect(timeline.getByText("compiled by the test")).toBeVisible();
  // The spec was compiled at submission: its inputs show with their values.
  await expect(page.getByRole("cell", { name: "lr", exact: true })).toBeVisible();
  await expect(page.getByRole("cell", { name: "0.01", exact: true })).toBeVisible();
  await page.screenshot({ path: `${shots}/run.png`, fullPage: true });

  // A status reported meanwhile shows up without a reload.
  await page.evaluate(() => ((window as any).__noReload = true));
  const moved = await request.post(`/api/v1/default/e2e-runs/runs/${run.uuid}/statuses`, {
    data: { condition: { type: "queued", reason: "E2E", message: "queued by the test" } },
  });
  expect(moved.status()).toBe(200);
  await expect(timeline.locator("[data-status=queued]")).toBeVisible({ timeout: 10_000 });
  await expect(page.locator("h1 + [data-status=queued]")).toBeVisible();
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);

  await page.getByRole("link", { name: "Spec" }).click();
  await expect(page).toHaveURL(new RegExp(`/runs/${run.uuid}/spec$`));
  await expect(page.getByTestId("run-spec")).toContainText("kind: job");
  await page.screenshot({ path: `${shots}/run-spec.png`, fullPage: true });
});

test("filters the runs table with the query language, errors inline", async ({ page, request }) => {
  await request.post("/api/v1/default/projects/create", { data: { name: "e2e-query" } });
  for (const name of ["sweep-a", "sweep-b", "baseline"]) {
    const created = await request.post("/api/v1/default/e2e-query/runs", { data: { name } });
    expect(created.status()).toBe(201);
  }
  await page.goto("/default/e2e-query");
  await waitForHydration(page);
  const table = page.getByTestId("runs-table");
  await expect(table.locator("tbody tr")).toHaveCount(3);

  await page.getByTestId("query-input").fill("name:sweep%");
  await page.getByTestId("query-submit").click();
  await expect(page).toHaveURL(/query=name%3Asweep%25/);
  await expect(table.locator("tbody tr")).toHaveCount(2);
  await expect(table.getByText("baseline")).toHaveCount(0);
  await page.screenshot({ path: `${shots}/project-query.png`, fullPage: true });

  await page.getByTestId("query-input").fill("stauts:running");
  await page.getByTestId("query-submit").click();
  await expect(page.getByTestId("query-error")).toContainText("did you mean `status`");
  await expect(page.getByTestId("query-input")).toHaveValue("stauts:running");

  // Column headers sort, keeping the query: by name, then reversed.
  await page.getByTestId("query-input").fill("name:%e%");
  await page.getByTestId("query-submit").click();
  await expect(table.locator("tbody tr")).toHaveCount(3);
  await table.locator("[data-sort=name]").click();
  await expect(page).toHaveURL(/sort=name/);
  await expect(page).toHaveURL(/query=name%3A%25e%25/);
  await expect(table.locator("tbody tr").first()).toContainText("baseline");
  await table.locator("[data-sort=name]").click();
  await expect(page).toHaveURL(/sort=-name/);
  await expect(table.locator("tbody tr").first()).toContainText("sweep-b");

  // The view is in the URL, so it can be shared and reloaded.
  await page.goto("/default/e2e-query?query=name%3Abaseline");
  await expect(page.getByTestId("runs-table").locator("tbody tr")).toHaveCount(1);
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("pages render on the server", async ({ page, request }) => {
    await request.post("/api/v1/default/projects/create", { data: { name: "e2e-ssr" } });
    const created = await request.post("/api/v1/default/e2e-ssr/runs", { data: { name: "ssr-run" } });
    const run = await created.json();

    await page.goto("/");
    await expect(page.getByTestId("project-list").getByText("e2e-ssr")).toBeVisible();
    await page.goto("/default/e2e-ssr");
    await expect(page.getByTestId("runs-table").getByText("ssr-run")).toBeVisible();
    await page.goto(`/default/e2e-ssr/runs/${run.uuid}`);
    await expect(page.getByTestId("run-title")).toHaveText("ssr-run");

    const missing = await page.goto("/default/does-not-exist");
    expect(missing?.status()).toBe(404);
    await expect(page.getByRole("alert")).toContainText("was not found");
  });
});

test("dark mode can be toggled and is remembered", async ({ page }) => {
  await page.emulateMedia({ colorScheme: "light" });
  await page.goto("/");
  await waitForHydration(page);
  await expect(page.locator("html")).not.toHaveClass(/dark/);
  await page.getByTestId("theme-toggle").click();
  await expect(page.locator("html")).toHaveClass(/dark/);
  await page.screenshot({ path: `${shots}/projects-dark.png`, fullPage: true });
  await page.reload();
  await expect(page.locator("html")).toHaveClass(/dark/);
});
