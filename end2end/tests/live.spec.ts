import { join } from "node:path";
import { expect, test } from "@playwright/test";

// A server with the local executor, started by global-setup.ts.
const live = `http://127.0.0.1:${process.env.TRELLIS_E2E_LIVE_PORT ?? "18081"}`;
const shots = join(__dirname, "..", "artifacts");

function job(script: string): string {
  return `version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c]\n    args: [${JSON.stringify(script)}]\n`;
}

test("a running job's logs and status follow live, without a reload", async ({ page, request }) => {
  const project = await request.post(`${live}/api/v1/default/projects/create`, { data: { name: "e2e-live" } });
  expect(project.status()).toBe(201);

  // The project page is open before the run exists: the run appears, then
  // its status moves, without a reload.
  await page.goto(`${live}/default/e2e-live`);
  await page.evaluate(() => ((window as any).__noReload = true));
  // Let hydration open the status stream before submitting.
  await page.waitForTimeout(1500);
  const script =
    "for i in $(seq 1 30); do echo step $i; sleep 0.1; done; " +
    "printf '\\033[32mgreen done\\033[0m\\n'; printf 'progress 10%%\\rprogress 50%%\\rprogress 100%%\\n'; sleep 3";
  const created = await request.post(`${live}/api/v1/default/e2e-live/runs`, {
    data: { name: "live-job", content: job(script) },
  });
  expect(created.status()).toBe(201);
  const run = await created.json();
  const table = page.getByTestId("runs-table");
  await expect(table.getByText("live-job")).toBeVisible({ timeout: 10_000 });
  await expect(table.locator("[data-status=running]")).toBeVisible({ timeout: 10_000 });
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);

  // The logs tab follows the run: lines arrive while it runs.
  await page.goto(`${live}/default/e2e-live/runs/${run.uuid}/logs`);
  await page.evaluate(() => ((window as any).__noReload = true));
  const logs = page.getByTestId("run-logs");
  await expect(page.getByTestId("log-state")).toContainText("Live");
  await expect(logs.getByText("step 30", { exact: true })).toBeVisible({ timeout: 15_000 });
  // ANSI colours are kept; a `\r` progress bar shows its last state only.
  await expect(logs.locator("span.text-green-400", { hasText: "green done" })).toBeVisible();
  await expect(logs.getByText("progress 100%")).toBeVisible();
  await expect(logs.getByText("progress 50%")).toHaveCount(0);
  // Auto-scroll kept the newest line in view.
  const atBottom = await logs.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 30);
  expect(atBottom).toBe(true);
  await page.screenshot({ path: `${shots}/run-logs-live.png`, fullPage: true });

  // Search narrows the lines.
  await page.getByTestId("log-search").fill("step 1");
  await expect(page.getByTestId("log-summary")).toContainText("match");
  await expect(logs.getByText("step 20", { exact: true })).toHaveCount(0);
  await expect(logs.getByText("step 12", { exact: true })).toBeVisible();
  await page.getByTestId("log-search").fill("");

  // The run ends: the header and the stream say so, still without a reload.
  await expect(page.locator("h1 + [data-status=succeeded]")).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId("log-state")).toContainText("Complete");
  await expect(page.getByTestId("log-summary")).toContainText("32 lines");
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);
});

test("a failing job ends failed with its error on the run page", async ({ page, request }) => {
  await request.post(`${live}/api/v1/default/projects/create`, { data: { name: "e2e-fail" } });
  const created = await request.post(`${live}/api/v1/default/e2e-fail/runs`, {
    data: { name: "broken", content: job("echo about to fail; echo no such file >&2; exit 3") },
  });
  const run = await created.json();
  await page.goto(`${live}/default/e2e-fail/runs/${run.uuid}`);
  await expect(page.locator("h1 + [data-status=failed]")).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId("status-timeline")).toContainText("code 3");
  await expect(page.getByTestId("status-timeline")).toContainText("no such file");
});
