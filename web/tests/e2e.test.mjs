// End-to-end tests of the web UI in Debian's Chromium (playwright-core, no browser download),
// against the real `scopedex serve` on a small real index (scripts/make-test-index.sh).
//
//   npm test                       (from web/, after `npm run build`)
// Environment:
//   SCOPEDEX_BIN        scopedex binary (default $CARGO_TARGET_DIR/debug/scopedex)
//   SCOPEDEX_TEST_INDEX index to use as is (default: built once and cached under the target dir)
//   SCOPEDEX_WEB_URL    test an already running server instead of starting one
//   CHROMIUM            browser binary (default /usr/bin/chromium)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const root = path.resolve(webDir, "..");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, "target");
const bin = process.env.SCOPEDEX_BIN || path.join(targetDir, "debug", "scopedex");
const shots = path.join(root, "screenshots");

let server = null;
let serverLog = "";
let base = process.env.SCOPEDEX_WEB_URL?.replace(/\/$/, "") ?? "";
let userDataDir = null;
let context = null;
let page = null;
const pageErrors = [];

// ------------------------------------------------------------------ helpers
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function ensureIndex() {
  if (process.env.SCOPEDEX_TEST_INDEX) return process.env.SCOPEDEX_TEST_INDEX;
  const script = path.join(root, "scripts", "make-test-index.sh");
  const st = fs.statSync(bin);
  const stamp = createHash("sha256")
    .update(fs.readFileSync(script))
    .update(`${st.size}:${st.mtimeMs}`)
    .digest("hex");
  const dir = path.join(targetDir, "web-test-index");
  const stampFile = `${dir}.stamp`;
  if (fs.existsSync(path.join(dir, "manifest.json")) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, "utf8") === stamp) {
    return dir;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(`${dir}.src`, { recursive: true, force: true });
  fs.rmSync(stampFile, { force: true });
  const r = spawnSync("bash", [script, dir], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, SCOPEDEX_BIN: bin } });
  assert.equal(r.status, 0, "make-test-index.sh failed");
  fs.writeFileSync(stampFile, stamp);
  return dir;
}

async function waitHealthy(url, ms) {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    if (server && server.exitCode !== null) throw new Error(`scopedex serve exited (${server.exitCode}):\n${serverLog}`);
    try {
      const r = await fetch(`${url}/api/health`);
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server not healthy after ${ms} ms: ${last}\n${serverLog}`);
}

async function getJson(p) {
  const r = await fetch(base + p);
  assert.ok(r.ok, `GET ${p}: HTTP ${r.status}`);
  return r.json();
}

/** Opens a UI path and waits for the page to finish rendering. */
async function open(p) {
  await page.goto(base + p);
  await ready();
}
async function ready() {
  await page.waitForSelector('main[data-state="ready"]', { timeout: 15000 });
}
const h1 = () => page.locator("main h1").first().innerText();
/** The format the UI uses for exact values (format.ts actExact). */
const exact = (v) => String(Number(v.toPrecision(6)));
/** How the UI shows a token's text (format.ts visibleToken). */
function visible(t) {
  if (t === "") return "∅";
  let out = t
    .replace(/\r\n|\r|\n/g, "⏎")
    .replace(/\t/g, "⇥")
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  if (/^ +$/.test(out)) out = out.replace(/ /g, "·");
  return out;
}

// ------------------------------------------------------------------ setup
let L2R = "L2R-1x";
/** The index the tests serve (null when they run against an outside server). */
let testIndex = null;
let liveFeature = 0;
let dash = null;

before(async () => {
  fs.mkdirSync(shots, { recursive: true });
  if (!base) {
    assert.ok(fs.existsSync(bin), `${bin} missing: cargo build -p scopedex-cli`);
    assert.ok(fs.existsSync(path.join(webDir, "dist", "index.html")), "web/dist missing: npm run build");
    const index = ensureIndex();
    testIndex = index;
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(bin, ["serve", index, "--addr", `127.0.0.1:${port}`, "--web", path.join(webDir, "dist")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    server.stdout.on("data", (d) => (serverLog += d));
    server.stderr.on("data", (d) => (serverLog += d));
    await waitHealthy(base, 60000);
  }
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "scopedex-chromium-"));
  // A fresh profile per run: launchPersistentContext on a new temporary directory.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text());
  });

  const { saes } = await getJson("/api/saes");
  assert.ok(saes.length >= 2, "the test index has two SAEs");
  L2R = saes.find((s) => s.sae_id.startsWith("L2R"))?.sae_id ?? saes[0].sae_id;
  const list = await getJson(`/api/saes/${L2R}/features?sort=density&order=desc&live=true&limit=20`);
  assert.ok(list.features.length > 0, "some live feature");
  // The densest live feature that has co-occurrence partners, so the link test has one to follow.
  for (const f of list.features) {
    const d = await getJson(`/api/saes/${L2R}/features/${f.feature}`);
    if (d.cooccurrence.length > 0 && d.top_examples.length > 0) {
      liveFeature = f.feature;
      dash = d;
      break;
    }
  }
  assert.ok(dash, "a live feature with examples and co-occurrence partners");
});

after(async () => {
  await context?.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => {
      const t = setTimeout(() => {
        server.kill("SIGKILL");
        r();
      }, 5000);
      server.on("exit", () => {
        clearTimeout(t);
        r();
      });
    });
  }
});

// ------------------------------------------------------------------ tests
test("index page lists the SAEs with their stats and links", async () => {
  await open("/");
  await page.screenshot({ path: path.join(shots, "index-1280.png"), fullPage: true });
  assert.match(await h1(), /scopedex index/);
  const info = await getJson("/api/index");
  assert.ok((await page.locator("main .facts").innerText()).includes(info.model.id));
  for (const id of info.saes) {
    assert.equal(await page.locator(`table.saes a[href="/sae/${id}"]`).count(), 1, id);
  }
  // Jump box: pick SAE + feature, Enter opens the feature page.
  await page.selectOption("#jump-sae", L2R);
  await page.fill("#jump-f", String(liveFeature));
  await page.press("#jump-f", "Enter");
  await ready();
  assert.equal(new URL(page.url()).pathname, `/sae/${L2R}/feature/${liveFeature}`);
});

test("feature page: tokens shaded by activation with exact values on hover and keyboard focus", async () => {
  await open(`/sae/${L2R}/feature/${liveFeature}`);
  assert.match(await h1(), new RegExp(`${L2R}\\s+#${liveFeature}$`));
  const stats = await page.locator("main .stats").innerText();
  assert.ok(stats.includes(dash.max_act.toFixed(3)), `max act in ${stats}`);
  assert.ok(stats.includes(dash.mean_act.toFixed(3)), `mean act in ${stats}`);

  const examples = page.locator("ol.examples.top > li.example");
  assert.equal(await examples.count(), dash.top_examples.length);
  // Every example: one span per token, data-act equal to the API's value, shaded iff > 0.
  const seen = await examples.evaluateAll((lis) =>
    lis.map((li) =>
      Array.from(li.querySelectorAll(".tok")).map((t) => ({
        act: Number(t.dataset.act),
        bg: t.style.backgroundColor,
        label: t.getAttribute("aria-label"),
        tab: t.tabIndex,
      })),
    ),
  );
  dash.top_examples.forEach((ex, i) => {
    assert.equal(seen[i].length, ex.tokens.length, `example ${i} token count`);
    ex.acts.forEach((v, j) => {
      assert.equal(seen[i][j].act, v, `example ${i} token ${j}`);
      assert.equal(seen[i][j].bg !== "", v > 0, `example ${i} token ${j} shading`);
      assert.ok(seen[i][j].label.endsWith(exact(v)), `aria-label ${seen[i][j].label}`);
    });
    assert.equal(seen[i].filter((t) => t.tab === 0).length, 1, "one tab stop per example");
  });
  // Texts of the first example's tokens: the decoded strings, whitespace made visible.
  const ex0 = dash.top_examples[0];
  const texts = await examples.first().locator(".tok").allTextContents();
  ex0.tokens.forEach((t, j) => assert.equal(texts[j], visible(t), `token ${j}`));
  // Stronger activations are shaded more strongly.
  const alpha = (bg) => Number(/rgba\([^)]*,\s*([\d.]+)\)/.exec(bg)?.[1] ?? (bg ? 1 : 0));
  const firstSeen = seen[0];
  const maxPos = ex0.max_pos;
  for (const t of firstSeen) assert.ok(alpha(t.bg) <= alpha(firstSeen[maxPos].bg) + 1e-9);

  // Hover: the tooltip shows the exact value.
  const tip = page.locator("#tooltip");
  const maxTok = examples.first().locator(`.tok[data-pos="${maxPos}"]`);
  await maxTok.hover();
  await tip.waitFor({ state: "visible" });
  assert.ok((await tip.innerText()).includes(exact(ex0.acts[maxPos])), await tip.innerText());

  // Keyboard: Tab from the heading reaches the first example's max token, arrows move on.
  await page.mouse.move(0, 0);
  await page.locator("main h1").focus();
  let found = false;
  for (let i = 0; i < 80 && !found; i++) {
    await page.keyboard.press("Tab");
    found = await page.evaluate(() => document.activeElement?.classList.contains("tok") ?? false);
  }
  assert.ok(found, "a token is reachable with Tab");
  const focused = await page.evaluate(() => ({
    pos: Number(document.activeElement.dataset.pos),
    ctx: document.activeElement.closest("li.example")?.dataset.context,
  }));
  assert.equal(focused.pos, maxPos);
  assert.equal(Number(focused.ctx), ex0.context_id);
  await tip.waitFor({ state: "visible" });
  assert.ok((await tip.innerText()).includes(exact(ex0.acts[maxPos])));
  const dir = maxPos + 1 < ex0.tokens.length ? "ArrowRight" : "ArrowLeft";
  const nextPos = dir === "ArrowRight" ? maxPos + 1 : maxPos - 1;
  await page.keyboard.press(dir);
  assert.equal(await page.evaluate(() => Number(document.activeElement.dataset.pos)), nextPos);
  assert.ok((await tip.innerText()).includes(exact(ex0.acts[nextPos])), await tip.innerText());
  await page.keyboard.press("Escape");

  // Intervals, histogram, logits, top tokens, co-occurrence are all there.
  assert.equal(await page.locator(".intervals details.interval").count(), dash.intervals.length);
  const ivExamples = dash.intervals.reduce((n, iv) => n + iv.examples.length, 0);
  assert.equal(await page.locator(".intervals li.example").count(), ivExamples);
  assert.equal(await page.locator(".feature-grid .plot svg rect.bar").count(), dash.act_hist.length + dash.logit_hist.length);
  // The logit histogram is drawn, and its range holds the top logit effects.
  assert.ok(dash.logit_hist.length > 0);
  assert.ok(dash.logit_hist_range[0] <= dash.logit_pos.at(-1).value && dash.logit_neg.at(-1).value <= dash.logit_hist_range[1]);
  assert.equal(await page.locator("table.logits-pos tbody tr").count(), dash.logit_pos.length);
  assert.equal(await page.locator("table.logits-neg tbody tr").count(), dash.logit_neg.length);
  assert.equal(await page.locator("ul.top-tokens li").count(), dash.top_tokens.length);
  assert.equal(await page.locator(".cooc tbody a").count(), dash.cooccurrence.length);
  // Decoder neighbours: computed for the test index's SAEs, listed closest first per SAE.
  assert.ok(dash.decoder_neighbours.length > 0);
  assert.equal(await page.locator("table.neighbours tbody tr").count(), dash.decoder_neighbours.length);
  // Prev/next.
  if (liveFeature > 0) assert.equal(await page.locator(`a[rel="prev"]`).getAttribute("href"), `/sae/${L2R}/feature/${liveFeature - 1}`);
  assert.equal(await page.locator(`a[rel="next"]`).getAttribute("href"), `/sae/${L2R}/feature/${liveFeature + 1}`);
});

test("feature page screenshots at 1280 and 390 px, no horizontal overflow", async () => {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
    await open(`/sae/${L2R}/feature/${liveFeature}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `horizontal overflow of ${overflow}px at ${width}px`);
    await page.screenshot({ path: path.join(shots, `feature-${width}.png`), fullPage: true });
    await page.screenshot({ path: path.join(shots, `feature-${width}-top.png`) });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
});

test("following a co-occurrence link, then back and forward", async () => {
  const start = `/sae/${L2R}/feature/${liveFeature}`;
  await open(start);
  const p = dash.cooccurrence[0];
  const target = `/sae/${p.other_sae}/feature/${p.other_feature}`;
  const a = page.locator(`.cooc a[href="${target}"]`).first();
  const row = await a.locator("xpath=ancestor::tr").innerText();
  assert.ok(row.includes(p.jaccard.toFixed(3)) && row.includes(p.npmi.toFixed(3)), row);
  await a.click();
  await page.waitForURL(base + target);
  await ready();
  assert.match(await h1(), new RegExp(`${p.other_sae}\\s+#${p.other_feature}$`));
  await page.goBack();
  await page.waitForURL(base + start);
  await ready();
  assert.match(await h1(), new RegExp(`#${liveFeature}$`));
  await page.goForward();
  await page.waitForURL(base + target);
  await ready();
  assert.match(await h1(), new RegExp(`#${p.other_feature}$`));
});

test("search shows matching contexts with feature links", async () => {
  // A word from a top example of the live feature certainly occurs in the corpus.
  const word = dash.top_examples[0].tokens
    .map((t) => t.trim())
    .filter((t) => /^[A-Za-z]{4,}$/.test(t))
    .sort((a, b) => b.length - a.length)[0] ?? "the";
  const api = await getJson(`/api/search?q=${encodeURIComponent(word)}&limit=25`);
  assert.ok(api.hits.length > 0, `search for ${word}`);
  await open("/");
  await page.fill("#q", word);
  await page.press("#q", "Enter");
  await ready();
  assert.equal(new URL(page.url()).pathname, "/search");
  assert.equal(new URL(page.url()).searchParams.get("q"), word);
  assert.equal(await page.locator("ol.hits > li.hit").count(), api.hits.length);
  const firstHitText = await page.locator("li.hit .hit-text").first().textContent();
  assert.equal(firstHitText, api.hits[0].text);
  assert.ok((await page.locator("li.hit mark").count()) > 0, "query words are marked");
  await page.screenshot({ path: path.join(shots, "search-1280.png") });
  const f0 = api.hits.find((h) => h.features.length > 0)?.features[0];
  if (f0) {
    await page.locator(`li.hit a[href="/sae/${f0.sae}/feature/${f0.feature}"]`).first().click();
    await ready();
    assert.match(await h1(), new RegExp(`#${f0.feature}$`));
    await page.goBack();
    await ready();
    assert.equal(new URL(page.url()).searchParams.get("q"), word);
    assert.equal(await page.locator("#q").inputValue(), word);
  }
});

test("feature search: query chips link to dashboards, firing tokens marked, more like this, syntax errors", async () => {
  const q = `feat:${L2R}/${liveFeature}`;
  const api = await getJson(`/api/search?q=${encodeURIComponent(q)}&limit=1000`);
  assert.ok(api.hits.length >= dash.top_examples.length, "every top example's context matches");
  assert.deepEqual(api.features, [{ sae: L2R, feature: liveFeature, min_strength: 0, negated: false }]);
  // The strongest context's firing token is the top example's max token.
  const ex = dash.top_examples[0];
  const hit = api.hits.find((x) => x.context_id === ex.context_id);
  assert.ok(hit, "the top example's context is a hit");
  assert.equal(hit.matches[0].pos, ex.max_pos);
  await open(`/search?q=${encodeURIComponent(q)}&limit=25`);
  assert.ok(await page.locator(`.query-feats a[href="/sae/${L2R}/feature/${liveFeature}"]`).isVisible());
  const shown = Math.min(25, api.hits.length);
  assert.equal(await page.locator("ol.hits > li.hit").count(), shown);
  // One marked firing token per hit (tokens with no bytes of their own cannot be marked).
  const markable = api.hits.slice(0, shown).filter((x) => x.matches[0].end > x.matches[0].start).length;
  assert.equal(await page.locator(`li.hit mark.fire[data-feature="${L2R}/${liveFeature}"]`).count(), markable);
  const item = page.locator(`li.hit[data-context="${ex.context_id}"]`);
  const tok = ex.tokens[ex.max_pos].trim();
  if ((await item.count()) > 0 && /^[\p{L}\p{N}]+$/u.test(tok)) {
    assert.equal((await item.locator("mark.fire").innerText()).trim(), tok);
  }
  await page.screenshot({ path: path.join(shots, "search-features-1280.png") });
  // Restricted to one SAE's features: every chip of every hit is that SAE's, the note says so,
  // and its link lists every SAE again.
  await open(`/search?q=${encodeURIComponent(q)}&limit=25&sae=${encodeURIComponent(L2R)}`);
  const chips = page.locator("li.hit ul.feats a");
  assert.ok((await chips.count()) > 0);
  for (const href of await chips.evaluateAll((as) => as.map((a) => a.getAttribute("href")))) {
    assert.ok(href.startsWith(`/sae/${L2R}/feature/`), href);
  }
  assert.match(await page.locator(".feature-saes").innerText(), new RegExp(`of ${L2R} only`));
  await page.locator(".feature-saes a").click();
  await ready();
  assert.equal(new URL(page.url()).searchParams.get("sae"), null);
  await open(`/search?q=${encodeURIComponent(q)}&limit=25`);
  // Strength buckets narrow the hits; words and features combine.
  const strong = await getJson(`/api/search?q=${encodeURIComponent(`${q}>0.75`)}&limit=1000`);
  assert.ok(strong.hits.length > 0 && strong.hits.length <= api.hits.length);
  const neg = await getJson(`/api/search?q=${encodeURIComponent(`-${q}`)}&limit=1000`);
  const info = await getJson("/api/index");
  assert.equal(neg.hits.length + api.hits.length, info.n_contexts, "-feat: is the complement");

  // More like this, from the first hit.
  const first = page.locator("ol.hits > li.hit").first();
  const firstId = Number(await first.getAttribute("data-context"));
  await first.getByRole("link", { name: "More like this" }).click();
  await ready();
  assert.equal(new URL(page.url()).searchParams.get("like"), String(firstId));
  const like = await getJson(`/api/contexts/${firstId}/similar?limit=25`);
  assert.ok(like.hits.length > 0);
  assert.ok(like.hits.every((x) => x.context_id !== firstId));
  assert.equal(await page.locator("ol.hits.similar > li.hit").count(), like.hits.length);
  const shared = like.hits[0].shared[0];
  assert.ok(await page.locator(`ol.similar li.hit a[href="/sae/${shared.sae}/feature/${shared.feature}"]`).first().isVisible());

  // Bad syntax: the API's position, shown with a caret.
  const bad = `${q}>0.3`;
  const r = await fetch(`${base}/api/search?q=${encodeURIComponent(bad)}`);
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.error, "invalid_query");
  assert.equal(body.position, bad.indexOf(">") + 1);
  await open(`/search?q=${encodeURIComponent(bad)}`);
  assert.ok(await page.locator(".query-error").isVisible());
  assert.match(await page.locator(".query-caret").innerText(), /\^/);
});

test("occurrences page through every context of a feature (activation log kept)", async () => {
  const all = [];
  let cursor = null;
  for (let i = 0; i < 1000; i++) {
    const page = await getJson(`/api/saes/${L2R}/features/${liveFeature}/occurrences?limit=7${cursor ? `&cursor=${cursor}` : ""}`);
    all.push(...page.occurrences.map((o) => o.context_id));
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  const byTerm = await getJson(`/api/search?q=${encodeURIComponent(`feat:${L2R}/${liveFeature}`)}&limit=1000`);
  assert.deepEqual(all, byTerm.hits.map((x) => x.context_id).sort((a, b) => a - b), "log and feature terms agree");
  assert.ok(all.length > 7, "several pages");
});

test("activate with similar: free text finds contexts by its features", async () => {
  const text = dash.top_examples[0].tokens.join("");
  const r = await fetch(`${base}/api/activate`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text, top_n: 1, similar: 5 }),
  });
  if (r.status === 503) return; // served without the model
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.ok(body.similar.hits.length > 0);
  assert.ok(body.similar.terms > 0);
  assert.equal(body.similar.context_id, undefined);
});

test("unknown feature, unknown SAE and unknown page give helpful pages", async () => {
  const sae = await getJson(`/api/saes/${L2R}`);
  await open(`/sae/${L2R}/feature/${sae.d_sae + 1000}`);
  assert.equal(await h1(), "Unknown feature");
  const text = await page.locator("main").innerText();
  assert.ok(text.includes(`0 to ${sae.d_sae - 1}`), text);
  assert.equal(await page.locator(`main a[href="/sae/${L2R}/feature/0"]`).count(), 1);
  assert.ok((await page.locator(`main a[href="/sae/${L2R}"]`).count()) >= 1);

  await open("/sae/NoSuchSae/feature/3");
  assert.equal(await h1(), "Unknown SAE");
  assert.ok((await page.locator(`main a[href="/sae/${L2R}"]`).count()) >= 1, "lists the real SAEs");

  await open(`/sae/${L2R}/feature/abc`);
  assert.equal(await h1(), "Not a feature number");
});

test("SAE page: density plot, sortable list, random live feature", async () => {
  await open(`/sae/${L2R}`);
  assert.equal(await h1(), L2R);
  assert.ok((await page.locator(".plot svg rect.bar").count()) > 0, "density histogram");
  await page.selectOption("#sort", "max_act");
  await page.waitForURL(/sort=max_act/);
  await ready();
  const api = await getJson(`/api/saes/${L2R}/features?sort=max_act&order=desc&live=true&limit=50`);
  const firstRow = await page.locator("table.features tbody tr").first().locator("a").innerText();
  assert.equal(firstRow, `#${api.features[0].feature}`);
  assert.equal(await page.locator("table.features tbody tr").count(), api.features.length);
  await page.screenshot({ path: path.join(shots, "sae-1280.png"), fullPage: true });
  await page.getByRole("button", { name: "Random live feature" }).click();
  await page.waitForURL(new RegExp(`/sae/${L2R}/feature/\\d+$`));
  await ready();
  assert.match(await h1(), /#\d+$/);
  await page.goBack();
  await ready();
  assert.match(page.url(), /sort=max_act/);
  assert.equal(await page.locator("#sort").inputValue(), "max_act");
});

test("activate page: features per token, and a clear message on 503", async () => {
  const health = await getJson("/api/health");
  const text = "The quick brown fox jumps over the lazy dog.";
  if (health.model_loaded) {
    const r = await fetch(`${base}/api/activate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text, top_n: 5 }),
    });
    assert.equal(r.status, 200);
    const want = await r.json();
    await open("/activate");
    await page.fill("#text", text);
    await page.getByRole("button", { name: "Run" }).click();
    await page.waitForSelector(".activation .tok");
    assert.equal(await page.locator(".activation .strip .tok").count(), want.tokens.length);
    assert.equal(await page.locator("table.per-token tbody tr").count(), want.tokens.length);
    const t = want.tokens.find((t) => t.features.length > 0);
    if (t) {
      const chips = await page.locator(`#tok-${t.pos} a`).evaluateAll((as) => as.map((a) => a.getAttribute("href")));
      assert.deepEqual(chips, t.features.map((f) => `/sae/${f.sae}/feature/${f.feature}`));
    }
  }
  // Whatever the server has, the UI must explain a 503 ("no model loaded").
  await page.route("**/api/activate", (route) =>
    route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ error: "no_model", detail: "started with --no-model" }) }),
  );
  try {
    await open("/activate");
    await page.fill("#text", text);
    await page.getByRole("button", { name: "Run" }).click();
    await page.waitForSelector(".no-model");
    const msg = await page.locator(".no-model").innerText();
    assert.match(msg, /No model loaded/);
    assert.match(msg, /started with --no-model/);
  } finally {
    await page.unroute("**/api/activate");
  }
});

test("explanations: imported into the served index, shown on the feature page, the SAE table and search", async (t) => {
  if (!testIndex) return t.skip("the tests run against an outside server");
  const text = "zebra crossings and traffic lights";
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "scopedex-expl-")), "batch-0.jsonl");
  fs.writeFileSync(file, JSON.stringify({ index: String(liveFeature), description: text, typeName: "np_max-act", explanationModelName: "gpt-4o-mini" }) + "\n");
  const r = spawnSync(bin, ["import-explanations", testIndex, "--sae", L2R, file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  // The server picks the republished index up on its own.
  const end = Date.now() + 15000;
  let d = null;
  while (Date.now() < end) {
    d = await getJson(`/api/saes/${L2R}/features/${liveFeature}`);
    if (d.explanation) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.equal(d.explanation?.text, text);
  await open(`/sae/${L2R}/feature/${liveFeature}`);
  assert.equal(await page.locator(".explanation .expl-text").innerText(), text);
  const list = await getJson(`/api/saes/${L2R}/features?limit=1000`);
  assert.equal(list.features.find((f) => f.feature === liveFeature)?.explanation, text);
  // The densest features come first: this one is on the first page.
  await open(`/sae/${L2R}`);
  assert.ok((await page.locator("td.expl").allInnerTexts()).includes(text), "the SAE table shows the explanation");
  await open(`/search?q=zebra`);
  const hit = page.locator(".feature-hits li").first();
  assert.match(await hit.innerText(), /zebra crossings/);
  assert.equal(await hit.locator("a").first().getAttribute("href"), `/sae/${L2R}/feature/${liveFeature}`);
});

test("no script errors in the page", () => {
  assert.deepEqual(pageErrors, []);
});
