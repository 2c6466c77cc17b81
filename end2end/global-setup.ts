// Starts `trellis server` on a temporary data directory and stops it after
// the run. TRELLIS_BIN names the binary (built by cargo-leptos); the server
// runs from the repository root so it finds the compiled site in target/site.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** Starts `trellis server` with `extra` arguments; resolves once healthy. */
async function start(bin: string, port: string, extra: string[]) {
  const dataDir = mkdtempSync(join(tmpdir(), "trellis-e2e-"));
  const server = spawn(bin, ["server", "--data-dir", dataDir, "--port", port, ...extra], {
    cwd: resolve(__dirname, ".."),
    env: { ...process.env, DATABASE_URL: "", AMQP_URL: "", REDIS_URL: "", RUST_LOG: "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  let exited = false;
  server.on("exit", () => (exited = true));

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error("trellis server exited during start-up");
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("trellis server did not become healthy in 60 s");
    await new Promise((r) => setTimeout(r, 250));
  }
  return async () => {
    server.kill("SIGTERM");
    await new Promise((r) => (exited ? r(null) : server.on("exit", r)));
    rmSync(dataDir, { recursive: true, force: true });
  };
}

export default async function globalSetup() {
  const bin = process.env.TRELLIS_BIN;
  if (!bin) throw new Error("set TRELLIS_BIN to the trellis binary to test");
  // The dashboard tests drive run statuses themselves: no executor.
  const stopTracking = await start(bin, process.env.TRELLIS_E2E_PORT ?? "18080", ["--executor", "none"]);
  // The live tests run real jobs on the local executor.
  const stopLive = await start(bin, process.env.TRELLIS_E2E_LIVE_PORT ?? "18081", []);
  return async () => {
    await stopTracking();
    await stopLive();
  };
}
