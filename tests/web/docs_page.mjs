// Drives /docs in Debian's chromium with playwright-core, as a user would: submit a task, watch
// its progress bar reach 100 % and its `succeeded` line, then SIGTERM the server (its pid is
// argv[3]) with a task running and see the draining banner with close code 1012. Screenshots go
// to argv[4]. Prints a JSON summary; any failed expectation or page error exits non-zero.
import { chromium } from "playwright-core";
import { mkdir } from "node:fs/promises";
import path from "node:path";

const [base, pid, out] = process.argv.slice(2);
const scale = Number(process.env.QUIESCE_TIME_SCALE || "1");
const ms = (s) => Math.round(s * 1000 * scale);
await mkdir(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // As root (CI) chromium refuses its sandbox; the page is our own, on loopback.
  // A container's /dev/shm may be small.
  args: [...(process.getuid() === 0 ? ["--no-sandbox"] : []), "--disable-dev-shm-usage"],
});
const summary = {};
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.setDefaultTimeout(ms(10));

  await page.goto(`${base}/docs`);
  await page.locator("#conn", { hasText: "connected to" }).waitFor();
  summary.routes_listed = await page.locator("#routes tr").count();

  // Submit through the form: the kind list and the parameter field come from /openapi.json.
  const submit = async (seconds) => {
    await page.selectOption("#kind", "sleep");
    await page.fill('#params input[name="seconds"]', String(seconds));
    await page.click("#submit");
    const result = page.locator("#result", { hasText: /^202 / });
    await result.waitFor();
    return (await result.textContent()).split(" ")[1];
  };
  const first = await submit(1);
  const row = page.locator(`tr[data-task="${first}"]`);
  await row.locator(".status", { hasText: "succeeded" }).waitFor();
  summary.progress_value = await row.locator("progress").getAttribute("value");
  summary.progress_text = await row.locator(".pct").textContent();
  summary.succeeded_line = await page.locator("#log li.succeeded", { hasText: first.slice(0, 8) }).first().textContent();
  if (summary.progress_value !== "100" || summary.progress_text !== "100 %")
    throw new Error(`progress bar at ${summary.progress_value} (${summary.progress_text})`);
  await page.screenshot({ path: path.join(out, "docs-succeeded.png"), fullPage: true });

  // A task still running when the server is told to stop: it finishes, then the stream closes 1012.
  const second = await submit(2);
  const row2 = page.locator(`tr[data-task="${second}"]`);
  await row2.locator(".status", { hasText: "running" }).waitFor();
  process.kill(Number(pid), "SIGTERM");
  const banner = page.locator("#banner");
  await banner.locator("text=/code 1012/").waitFor({ timeout: ms(15) });
  summary.banner = await banner.textContent();
  summary.second_task = await row2.locator(".status").textContent();
  summary.log_top = await page.locator("#log li").evaluateAll((lis) => lis.slice(0, 4).map((l) => l.textContent));
  const shot = path.join(out, "docs-draining.png");
  await page.screenshot({ path: shot, fullPage: true });
  summary.screenshot = shot;
  if (summary.second_task !== "succeeded") throw new Error(`task running at the signal: ${summary.second_task}`);
  // After the close the page reconnects to a server that is gone: connection errors are expected.
  summary.problems = problems.filter((p) => !/ERR_CONNECTION_REFUSED|WebSocket connection/.test(p));
  if (summary.problems.length) throw new Error(summary.problems.join("\n"));
} finally {
  await browser.close();
  console.log(JSON.stringify(summary));
}
