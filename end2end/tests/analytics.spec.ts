import { join } from "node:path";
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { waitForHydration } from "./hydration";

const shots = join(__dirname, "..", "artifacts");
// A fresh project per worker: a retried worker runs beforeAll again.
const project = `e2e-analytics-${Math.random().toString(36).slice(2, 8)}`;
const api = `/api/v1/default/${project}`;

type Run = { uuid: string; name: string };

/** Creates a run with param `lr` and `steps` points of `loss` (value = f(step)) and `acc`. */
async function trackedRun(
  request: APIRequestContext,
  name: string,
  lr: number,
  steps: number,
  loss: (step: number) => number,
): Promise<Run> {
  const created = await request.post(`${api}/runs`, { data: { name } });
  expect(created.status()).toBe(201);
  const run = await created.json();
  const base = `${api}/runs/${run.uuid}`;
  expect((await request.post(`${base}/params`, { data: { params: { lr } } })).status()).toBe(204);
  const metrics = Array.from({ length: steps }, (_, step) => [
    { key: "loss", value: loss(step), step },
    { key: "acc", value: 1 - loss(step) / 2, step },
  ]).flat();
  for (let i = 0; i < metrics.length; i += 1000) {
    expect((await request.post(`${base}/metrics`, { data: { metrics: metrics.slice(i, i + 1000) } })).status()).toBe(204);
  }
  return { uuid: run.uuid.replaceAll("-", ""), name };
}

let runs: Run[] = [];

test.beforeAll(async ({ request }) => {
  expect((await request.post("/api/v1/default/projects/create", { data: { name: project } })).status()).toBe(201);
  // Final losses: fast 0.1, medium 0.25, slow 0.5.
  runs = [
    await trackedRun(request, "fast", 0.1, 100, (s) => 0.1 + (99 - s) * 0.01),
    await trackedRun(request, "medium", 0.05, 100, (s) => 0.25 + (99 - s) * 0.01),
    await trackedRun(request, "slow", 0.01, 100, (s) => 0.5 + (99 - s) * 0.01),
  ];
});

function rowNames(page: Page) {
  return page.getByTestId("runs-table").locator("tbody tr td:nth-child(3) a");
}

test("filters the runs table with PQL (completed field names) and sorts by a metric column", async ({ page }) => {
  await page.goto(`/default/${project}?columns=metrics.loss,params.lr`);
  await waitForHydration(page);
  await expect(rowNames(page)).toHaveCount(3);

  // Completion offers the project's metric names while a field is typed.
  const input = page.getByTestId("query-input");
  await input.fill("metrics.lo");
  await expect(page.getByTestId("query-completions")).toContainText("metrics.loss");
  await input.press("Enter");
  await expect(input).toHaveValue("metrics.loss:");
  await input.pressSequentially("<0.3");
  await input.press("Enter");
  await expect(page).toHaveURL(/query=metrics\.loss%3A%3C0\.3/);
  await expect(rowNames(page)).toHaveText(["medium", "fast"]);
  await expect(page.getByTestId("run-count")).toHaveText("2");

  // A metric column sorts on the server, ascending then descending.
  await page.getByTestId("runs-table").locator("th a[data-sort='metrics.loss']").click();
  await expect(page).toHaveURL(/sort=metrics\.loss/);
  await expect(rowNames(page)).toHaveText(["fast", "medium"]);
  await page.getByTestId("runs-table").locator("th a[data-sort='metrics.loss']").click();
  await expect(page).toHaveURL(/sort=-metrics\.loss/);
  await expect(rowNames(page)).toHaveText(["medium", "fast"]);
  // The view is in the URL: a reload (or a shared link) shows the same.
  await page.reload();
  await expect(rowNames(page)).toHaveText(["medium", "fast"]);
  await expect(page.locator("td[data-column='metrics.loss']").first()).toHaveText("0.25");
  await page.screenshot({ path: `${shots}/runs-table.png`, fullPage: true });

  // A refused query is named inline and the page still renders.
  await page.goto(`/default/${project}?query=metricz.loss:1`);
  await expect(page.getByTestId("query-error")).toContainText("metricz");

  // The column picker adds a column through the URL.
  await page.goto(`/default/${project}`);
  await waitForHydration(page);
  await page.getByTestId("column-picker").locator("summary").click();
  await page.getByTestId("column-picker").locator("a[data-column='metrics.acc:max']").click();
  await expect(page).toHaveURL(/columns=.*metrics\.acc%3Amax/);
  await expect(page.getByTestId("runs-table").locator("th", { hasText: "acc (max)" })).toBeVisible();
  await page.screenshot({ path: `${shots}/runs-columns.png`, fullPage: true });
});

test("selects two runs, tags them in bulk, and compares them", async ({ page }) => {
  await page.goto(`/default/${project}?sort=name&columns=tags,metrics.loss`);
  await waitForHydration(page);
  const row = (name: string) => page.getByTestId("runs-table").locator("tbody tr", { hasText: name });
  await row("fast").getByTestId("select-run").check();
  await row("slow").getByTestId("select-run").check();
  await expect(page.getByTestId("selected-count")).toHaveText("2 selected");

  await page.getByTestId("tag-input").fill("picked");
  await page.getByTestId("tag-selected").click();
  await expect(page.getByTestId("bulk-outcome")).toHaveText("2 runs updated");
  await expect(row("fast").locator("td[data-column='tags']")).toContainText("picked");
  await expect(row("medium").locator("td[data-column='tags']")).not.toContainText("picked");

  await row("fast").getByTestId("select-run").check();
  await row("slow").getByTestId("select-run").check();
  await page.getByTestId("compare-selected").click();
  await expect(page).toHaveURL(/\/compare\?runs=/);
  await expect(page.getByTestId("compare-title")).toHaveText("Compare 2 runs");

  // Both curves of each metric, one colour per run, with a legend.
  const chart = page.locator("[data-testid=metric-chart][data-key=loss]");
  await expect(chart.getByTestId("chart-legend")).toContainText("fast");
  await expect(chart.getByTestId("chart-legend")).toContainText("slow");
  const svg = chart.getByTestId("chart-surface").locator("svg").first();
  await expect(svg.locator("polyline[stroke='#10B981'], polyline[stroke='#10b981']")).toHaveCount(1);
  await expect(svg.locator("polyline[stroke='#3B82F6'], polyline[stroke='#3b82f6']")).toHaveCount(1);

  // The values table: a baseline shows the other run's difference.
  const table = page.getByTestId("compare-table");
  await expect(table.locator("tr[data-row='metric.loss']")).toContainText("0.1");
  await page.getByTestId("baseline").selectOption({ label: "fast" });
  await expect(table.locator("tr[data-row='metric.loss'] [data-testid=delta]")).toHaveText("+0.4");
  await page.getByTestId("hide-identical").check();
  await expect(table.locator("tr[data-row='param.lr']")).toBeVisible();

  // Parallel coordinates: brushing the metric axis keeps the runs in range.
  await page.getByTestId("pc-metric").selectOption("loss");
  await expect(page.getByTestId("pc-kept")).toContainText("2 of 2 runs");
  const pc = page.getByTestId("parallel-coordinates");
  // Mouse events only reach what is inside the viewport.
  await pc.scrollIntoViewIfNeeded();
  const box = (await pc.boundingBox())!;
  // The last axis (the metric) sits 60 units from the right of 800; the
  // plot spans y 24..290 of 320. Brush the bottom half: low losses.
  const x = box.x + (box.width * (800 - 60)) / 800;
  const y = (v: number) => box.y + (box.height * v) / 320;
  await page.mouse.move(x, y(300));
  await page.mouse.down();
  await page.mouse.move(x, y(200), { steps: 5 });
  await page.mouse.move(x, y(160), { steps: 5 });
  await page.mouse.up();
  await expect(page.getByTestId("pc-kept")).toHaveText("1 of 2 runs in the brush: fast");
  await expect(pc.getByTestId("brush")).toHaveCount(1);
  await page.screenshot({ path: `${shots}/compare.png`, fullPage: true });
});

test("charts a run's metrics: hover read-out, zoom, table, and live points", async ({ page, request }) => {
  const fast = runs[0];
  await page.goto(`/default/${project}/runs/${fast.uuid}/metrics`);
  await waitForHydration(page);
  const chart = page.locator("[data-testid=metric-chart][data-key=loss]");
  const surface = chart.getByTestId("chart-surface");
  await expect(chart.getByTestId("chart-readout")).toHaveText("100 of 100 points");

  // Hover: the read-out names the nearest step and its exact value.
  const box = (await surface.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
  const readout = chart.getByTestId("chart-readout");
  await expect(readout).toContainText("step");
  const step = Number((await readout.getByTestId("readout-at").textContent())!.match(/step (\d+)/)![1]);
  expect(step).toBeGreaterThan(30);
  expect(step).toBeLessThan(70);
  const expected = Math.round((0.1 + (99 - step) * 0.01) * 1e6) / 1e6;
  await expect(readout.getByTestId("readout-value")).toHaveText(String(expected));
  await page.screenshot({ path: `${shots}/run-chart-hover.png`, fullPage: true });

  // Drag across the plot zooms into that step range.
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5, { steps: 8 });
  await page.mouse.up();
  await expect(chart.getByTestId("zoom-range")).toHaveText(/steps \d+–\d+/);
  await chart.getByTestId("reset-zoom").click();
  await expect(chart.getByTestId("zoom-range")).toHaveCount(0);

  // The same chart as a table of its points.
  await chart.getByTestId("chart-table-toggle").click();
  await expect(chart.getByTestId("chart-table").locator("tbody tr")).toHaveCount(100);
  await chart.getByTestId("chart-table-toggle").click();

  // Log scale and smoothing redraw in the browser.
  await page.getByTestId("log-scale").check();
  await expect(surface.locator("svg").first()).toBeVisible();

  // Points logged while the page is open appear without a reload.
  const metrics = Array.from({ length: 50 }, (_, i) => ({ key: "loss", value: 0.05, step: 100 + i }));
  expect((await request.post(`${api}/runs/${fast.uuid}/metrics`, { data: { metrics } })).status()).toBe(204);
  await page.mouse.move(0, 0);
  await expect(readout).toHaveText("150 of 150 points", { timeout: 15_000 });
});
