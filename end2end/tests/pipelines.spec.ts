import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "@playwright/test";

// A server with the local executor, started by global-setup.ts.
const live = `http://127.0.0.1:${process.env.TRELLIS_E2E_LIVE_PORT ?? "18081"}`;
const shots = join(__dirname, "..", "artifacts");
const example = (name: string) => readFileSync(join(__dirname, "..", "..", "examples", name), "utf8");

test("a dag's graph and timeline follow its operations live", async ({ page, request }) => {
  test.setTimeout(60_000);
  await request.post(`${live}/api/v1/default/projects/create`, { data: { name: "e2e-dag" } });
  const created = await request.post(`${live}/api/v1/default/e2e-dag/runs`, {
    data: { content: example("dag-pipeline.yaml") },
  });
  expect(created.status()).toBe(201);
  const dag = await created.json();
  expect(dag.kind).toBe("dag");

  await page.goto(`${live}/default/e2e-dag/runs/${dag.uuid}/pipeline`);
  await page.evaluate(() => ((window as any).__noReload = true));
  const graph = page.getByTestId("dag-graph");
  await expect(graph.getByTestId("dag-node")).toHaveCount(4);
  // Every node turns green as its operation succeeds, without a reload.
  await expect(graph.locator("[data-op=report][data-status=succeeded]")).toBeVisible({ timeout: 30_000 });
  for (const op of ["prepare", "train", "evaluate"]) {
    await expect(graph.locator(`[data-op=${op}][data-status=succeeded]`)).toBeVisible();
  }
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);
  await expect(page.getByTestId("gantt").getByTestId("gantt-row")).toHaveCount(4);
  // The timeline has a time axis that starts at the first operation.
  await expect(page.getByTestId("gantt-tick").first()).toHaveText("0s");
  expect(await page.getByTestId("gantt-tick").count()).toBeGreaterThan(1);
  await page.screenshot({ path: `${shots}/pipeline-dag.png`, fullPage: true });

  // A node opens its operation's run, which links back to the pipeline.
  await graph.locator("[data-op=train]").click();
  await expect(page.getByTestId("run-title")).toHaveText("train");
  await expect(page.getByTestId("pipeline-link")).toContainText("operation `train`");
});

test("a bayes sweep shows its progress, best trial and charts", async ({ page, request }) => {
  test.setTimeout(180_000);
  await request.post(`${live}/api/v1/default/projects/create`, { data: { name: "e2e-sweep" } });
  const created = await request.post(`${live}/api/v1/default/e2e-sweep/runs`, {
    data: { content: example("branin-bayes.yaml") },
  });
  expect(created.status()).toBe(201);
  const sweep = await created.json();
  expect(sweep.kind).toBe("matrix");

  await page.goto(`${live}/default/e2e-sweep/runs/${sweep.uuid}/pipeline`);
  await expect(page.getByTestId("sweep-progress")).toContainText("of 50 trials");
  await expect(page.getByTestId("sweep-progress")).toContainText("50 done", { timeout: 120_000 });
  const best = page.getByTestId("best-trial");
  await expect(best).toContainText(/loss = 0\.(39|40)/);
  await expect(best).toContainText("x1");
  await expect(page.getByTestId("sweep-chart").locator("svg")).toBeVisible();
  await expect(page.getByTestId("sweep-trials").locator("tbody tr")).toHaveCount(50);
  await page.screenshot({ path: `${shots}/pipeline-sweep.png`, fullPage: true });
});
