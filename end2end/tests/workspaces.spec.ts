import { homedir } from "node:os";
import { join } from "node:path";
import { expect, test } from "@playwright/test";

// A server with the local executor, started by global-setup.ts.
const live = `http://127.0.0.1:${process.env.TRELLIS_E2E_LIVE_PORT ?? "18081"}`;
const shots = join(__dirname, "..", "artifacts");
// The virtualenv `scripts/dev setup` installs JupyterLab into.
const python = join(
  process.env.TRELLIS_WORKSPACES_VENV ?? join(homedir(), ".cache", "trellis", "workspaces-venv"),
  "bin",
  "python",
);

test("a JupyterLab workspace started from the dashboard runs a cell through the proxy", async ({ page, context, request }) => {
  test.setTimeout(240_000);
  const project = await request.post(`${live}/api/v1/default/projects/create`, { data: { name: "e2e-lab" } });
  expect(project.status()).toBe(201);

  // New workspace, from the project page.
  await page.goto(`${live}/default/e2e-lab`);
  await expect(page.getByTestId("workspaces")).toContainText("No workspace is open");
  await page.waitForTimeout(1000); // hydration
  await page.getByTestId("new-workspace").click();
  await page.getByTestId("workspace-kind").selectOption("jupyterlab");
  await page.getByTestId("workspace-name").fill("notebook");
  await page.getByTestId("workspace-python").fill(python);
  await page.getByTestId("start-workspace").click();

  // Its run page follows it until the app answers, then offers Open.
  await expect(page).toHaveURL(/\/default\/e2e-lab\/runs\/[0-9a-f-]+\/logs$/, { timeout: 15_000 });
  const open = page.getByTestId("open-workspace");
  await expect(open).toBeVisible({ timeout: 90_000 });
  const href = await open.getAttribute("href");
  expect(href).toMatch(/^\/services\/v1\/default\/e2e-lab\/runs\/[0-9a-f]{32}\/8888\/$/);

  // The project's Workspaces list shows it with its Open link.
  await page.goto(`${live}/default/e2e-lab`);
  const row = page.getByTestId("workspace-row");
  await expect(row).toContainText("notebook");
  await expect(row).toContainText("jupyterlab");
  await expect(row.getByTestId("workspace-open")).toHaveAttribute("href", href!);
  await page.screenshot({ path: `${shots}/workspaces.png`, fullPage: true });

  // Open it (a new tab), make a notebook, run `6*7`: the kernel's
  // WebSocket goes through the proxy.
  const [lab] = await Promise.all([context.waitForEvent("page"), row.getByTestId("workspace-open").click()]);
  await lab.waitForLoadState();
  expect(lab.url()).toContain(href!);
  const launcher = lab.locator('.jp-LauncherCard[data-category="Notebook"]').first();
  await expect(launcher).toBeVisible({ timeout: 60_000 });
  await launcher.click();
  const notebook = lab.locator(".jp-NotebookPanel:not(.lm-mod-hidden)");
  // Wait for the kernel (its WebSocket comes through the proxy) before
  // typing: a notebook still starting takes focus back to command mode,
  // where the digits typed would turn the cell into a heading.
  await expect(notebook.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')).toHaveCount(1, {
    timeout: 90_000,
  });
  const cell = notebook.locator(".jp-Cell .cm-content").first();
  await cell.click();
  await expect(notebook.locator(".jp-Notebook.jp-mod-editMode")).toHaveCount(1);
  await lab.keyboard.type("6*7");
  await expect(cell).toHaveText("6*7");
  await lab.keyboard.press("Shift+Enter");
  const output = notebook.locator(".jp-OutputArea-output").first();
  const uuid = href!.split("/")[6];
  try {
    await expect(output).toHaveText("42", { timeout: 60_000 });
  } catch (error) {
    // What JupyterLab said, to tell a kernel that never started from a
    // proxy that dropped its messages.
    const logs = await request.get(`${live}/api/v1/default/e2e-lab/runs/${uuid}/logs`);
    console.log(`the workspace's logs:\n${await logs.text()}`);
    throw error;
  }
  await lab.screenshot({ path: `${shots}/jupyterlab.png` });
  await lab.close();

  // Stop it from the API; the proxy then says it is stopped.
  const stopped = await request.post(`${live}/api/v1/default/e2e-lab/runs/${uuid}/stop`);
  expect(stopped.status()).toBe(200);
  await expect
    .poll(async () => (await (await request.get(`${live}/api/v1/default/e2e-lab/runs/${uuid}`)).json()).status, {
      timeout: 30_000,
    })
    .toBe("stopped");
  const gone = await request.get(`${live}${href}lab`, { headers: { Accept: "text/html" } });
  expect(gone.status()).toBe(503);
  expect(await gone.text()).toContain("is stopped");
});

test("VS Code (code-server) renders its workbench through the rewriting route", async ({ page, request }) => {
  test.setTimeout(180_000);
  const codeServer =
    process.env.TRELLIS_CODE_SERVER ??
    join(homedir(), ".cache", "trellis", "code-server", "node_modules", ".bin", "code-server");
  const project = await request.post(`${live}/api/v1/default/projects/create`, { data: { name: "e2e-code" } });
  expect(project.status()).toBe(201);
  const created = await request.post(`${live}/api/v1/default/e2e-code/runs`, {
    data: { name: "editor", content: "version: 1.1\nkind: operation\nhubRef: vscode\n", params: { code_server: codeServer } },
  });
  expect(created.status()).toBe(201);
  const run = await created.json();
  await page.goto(`${live}/default/e2e-code/runs/${run.uuid}`);
  const open = page.getByTestId("open-workspace");
  await expect(open).toBeVisible({ timeout: 90_000 });
  const href = (await open.getAttribute("href"))!;
  expect(href).toMatch(/^\/rewrite-services\/v1\/default\/e2e-code\/runs\/[0-9a-f]{32}\/8080\/$/);
  await page.goto(`${live}${href}`);
  // The workbench: its explorer and status bar, drawn by its scripts,
  // which came through the proxy, connected over its WebSocket.
  await expect(page.locator(".monaco-workbench")).toBeVisible({ timeout: 60_000 });
  await expect(page.locator(".statusbar")).toBeVisible({ timeout: 60_000 });
  expect(page.url()).toContain(href);
  await page.screenshot({ path: `${shots}/vscode.png` });
  const stopped = await request.post(`${live}/api/v1/default/e2e-code/runs/${run.uuid}/stop`);
  expect(stopped.status()).toBe(200);
});
