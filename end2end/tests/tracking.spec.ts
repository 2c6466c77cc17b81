import { join } from "node:path";
import { expect, test } from "@playwright/test";

const shots = join(__dirname, "..", "artifacts");

test("shows a run's tracked metrics and artifacts", async ({ page, request }) => {
  expect((await request.post("/api/v1/default/projects/create", { data: { name: "e2e-tracking" } })).status()).toBe(201);
  const created = await request.post("/api/v1/default/e2e-tracking/runs", { data: { name: "tracked" } });
  const run = await created.json();
  const base = `/api/v1/default/e2e-tracking/runs/${run.uuid}`;
  const metrics = Array.from({ length: 300 }, (_, step) => ({
    key: "loss",
    value: step === 120 ? 5 : 1 / (step + 1),
    step,
  }));
  expect((await request.post(`${base}/metrics`, { data: { metrics } })).status()).toBe(204);
  expect((await request.put(`${base}/artifacts/files/model/weights.bin`, { data: Buffer.from("0123456789") })).status()).toBe(201);

  await page.goto(`/default/e2e-tracking/runs/${run.uuid}/metrics`);
  const table = page.getByTestId("metrics-table");
  const row = table.locator("tr", { hasText: "loss" });
  await expect(row).toContainText("300");
  // The spike at step 120 survives downsampling: it is the max.
  await expect(row.locator("td").nth(3)).toHaveText("5");
  await expect(row.locator("svg path")).toHaveAttribute("d", /^M0\.0,/);
  await page.screenshot({ path: `${shots}/run-metrics.png`, fullPage: true });

  await page.getByRole("link", { name: "Artifacts" }).click();
  const list = page.getByTestId("artifacts-list");
  await list.getByRole("link", { name: "model/" }).click();
  await expect(page.getByTestId("artifacts-path")).toHaveText("/model");
  const file = page.getByTestId("artifacts-list").getByRole("link", { name: "weights.bin" });
  await expect(file).toHaveAttribute("href", `${base}/artifacts/files/model/weights.bin`);
  const download = await request.get(`${base}/artifacts/files/model/weights.bin`);
  expect(await download.text()).toBe("0123456789");
});
