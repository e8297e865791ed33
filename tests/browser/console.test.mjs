// The oversight console in Debian's chromium, driven by playwright-core.
//
// Run by the Rust test tests/it/browser.rs, which starts a gateway over
// mTLS, makes the calls this script looks for, starts the console and
// passes what it should find:
//   CIVEX_LOGIN_LINK  the console's one-time login link
//   CIVEX_CITIZEN     a watched citizen, looked up once (an alert is open)
//   CIVEX_REQUEST_ID  that look-up's request id
//   CIVEX_ENTRY       that look-up's audit index
//   CIVEX_ARTIFACTS   where screenshots and the printed PDF go
//   CHROMIUM          the browser (/usr/bin/chromium)
//
// playwright-core starts the browser with a new empty profile of its own.
// The steps run in order on one page, as an auditor would use it. Any
// message the page logs as an error (a CSP violation among them) fails
// the step it happened in.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run this through cargo test (tests/it/browser.rs)`);
  return value;
};
const link = env("CIVEX_LOGIN_LINK");
const citizen = env("CIVEX_CITIZEN");
const requestId = env("CIVEX_REQUEST_ID");
const entry = env("CIVEX_ENTRY");
const artifacts = env("CIVEX_ARTIFACTS");
const origin = new URL(link).origin;
const masked = `${citizen.slice(0, 6)}${"*".repeat(8)}${citizen.slice(14)}`;

let browser;
let page;
const problems = [];

const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

/// Fails the step if the page logged an error since the last check.
const noProblems = () => {
  const seen = problems.splice(0);
  assert.deepEqual(seen, [], "the page logged errors");
};

describe("the oversight console in chromium", () => {
  before(async () => {
    browser = await chromium.launch({
      executablePath: env("CHROMIUM"),
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    console.log(`chromium ${browser.version()}`);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
    page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  });

  after(async () => {
    await browser?.close();
  });

  it("logs in once with the printed link and shows the overview", async () => {
    await page.goto(link);
    assert.equal(await page.locator("html").getAttribute("lang"), "zh-CN");
    await page.fill("#user", "auditor.wang");
    await Promise.all([page.waitForURL(`${origin}/?lang=zh`), page.click("form.login button[type=submit]")]);
    assert.match(await page.locator("header.top .who").innerText(), /auditor\.wang/);
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === "civex_session");
    assert.ok(session?.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
    // The chart has a bar per hour; the working day's hours have calls and refusals.
    const bars = page.locator("svg.chart rect.calls");
    assert.equal(await bars.count(), 24);
    const tall = await page.$$eval("svg.chart rect.calls", (r) => r.filter((b) => +b.getAttribute("height") > 0).length);
    const refused = await page.$$eval("svg.chart rect.refusals", (r) => r.filter((b) => +b.getAttribute("height") > 0).length);
    assert.ok(tall >= 6 && refused >= 6, `bars with calls ${tall}, with refusals ${refused}`);
    await shot("overview");
    noProblems();

    // The link was good for one login: used again, it is refused.
    const again = await (await browser.newPage()).goto(link);
    assert.equal(again.status(), 403);
  });

  it("runs a search and finds the calls the test made", async () => {
    await page.click("nav >> a[href='/search']");
    await page.fill("#citizen_id", citizen);
    await Promise.all([page.waitForURL(/\/search\?/), page.click("form.search button[type=submit]")]);
    const row = page.locator("table.entries tbody tr", { hasText: requestId });
    assert.equal(await row.count(), 1, "the look-up's row");
    assert.match(await row.innerText(), /officer-7/);
    await shot("search");
    noProblems();
    await Promise.all([page.waitForURL(`${origin}/entry/${entry}`), row.locator(`a[href='/entry/${entry}']`).click()]);
  });

  it("opens the entry and sees its inclusion proof verified", async () => {
    const proof = await page.locator("section[aria-labelledby=proof-heading]").innerText();
    assert.match(proof, /✓/, proof);
    assert.doesNotMatch(proof, /✗/, proof);
    const facts = await page.locator("main").innerText();
    assert.match(facts, /hukou\.settlement/);
    assert.match(facts, new RegExp(requestId));
    await shot("entry");
    noProblems();
  });

  it("prints a citizen's history, the ID masked", async () => {
    await page.click("nav >> a[href='/history']");
    await page.fill("#citizen_id", citizen);
    await Promise.all([page.waitForURL(/\/history\?/), page.click("form.history button[type=submit]")]);
    const printable = page.locator("article.printable");
    const text = await printable.innerText();
    assert.ok(text.includes(masked), text);
    assert.match(text, /qujing-psb \/ officer-7/);
    assert.ok(!(await page.content()).includes(`<dd>${citizen}</dd>`), "the raw ID is not shown");
    assert.equal(await page.locator("button[data-print]").count(), 1);
    // As printed: the navigation and the form are left off the paper.
    await page.emulateMedia({ media: "print" });
    assert.equal(await page.locator("header.top").isVisible(), false);
    assert.equal(await page.locator("form.history").isVisible(), false);
    assert.equal(await printable.isVisible(), true);
    const pdf = await page.pdf({ format: "A4", printBackground: true });
    assert.equal(pdf.subarray(0, 5).toString(), "%PDF-");
    writeFileSync(join(artifacts, "history.pdf"), pdf);
    await shot("history-print");
    await page.emulateMedia({ media: "screen" });
    noProblems();
  });

  it("opens a case from the alert and closes it with a disposition", async () => {
    await page.click("nav >> a[href='/alerts']");
    // The consent, the look-up and the auditor's own reads each raised one;
    // the case is about the official's look-up.
    const alert = page
      .locator("table.alerts tbody tr", { hasText: "watched_citizen" })
      .filter({ hasText: "officer-7" });
    assert.equal(await alert.count(), 1, "the watched citizen's alert for officer-7's look-up");
    await alert.locator("input[type=checkbox]").check();
    await page.fill("#title", "浏览器测试 · 关注对象被查询");
    await page.fill("#assignee", "auditor.wang");
    await Promise.all([page.waitForURL(/\/cases\/[^/?]+$/), page.click("fieldset.case-open button[type=submit]")]);
    assert.equal(await page.locator("dd.case-state").innerText(), "已立案");

    const step = (op) => page.locator(`form:has(input[name=op][value=${op}])`);
    await step("note").locator("textarea").fill("已电话核实经办人");
    await Promise.all([page.waitForLoadState("load"), step("note").locator("button").click()]);
    await page.waitForSelector("ol.events li:has-text('已电话核实经办人')");
    await Promise.all([page.waitForLoadState("load"), step("investigate").locator("button").click()]);
    assert.equal(await page.locator("dd.case-state").innerText(), "调查中");
    // Closing needs a disposition: the browser will not submit without one.
    await step("close").locator("button").click();
    assert.equal(await page.locator("dd.case-state").innerText(), "调查中");
    await page.check("#d-justified");
    await page.fill("#close-note", "依法办理落户");
    await Promise.all([page.waitForLoadState("load"), step("close").locator("button").click()]);
    await page.waitForSelector("dd.case-state:has-text('已结案')");
    assert.equal(await page.locator("form:has(input[name=op])").count(), 0, "a closed case has no actions");
    await shot("case-closed");
    noProblems();
  });

  it("switches to English and back, remembered across pages", async () => {
    await Promise.all([page.waitForLoadState("load"), page.click("ul.lang a[lang=en]")]);
    assert.equal(await page.locator("html").getAttribute("lang"), "en");
    assert.equal(await page.locator("dd.case-state").innerText(), "closed");
    await page.click("nav >> a[href='/alerts']");
    assert.equal(await page.locator("main h1").innerText(), "Alerts");
    await shot("alerts-en");
    await Promise.all([page.waitForLoadState("load"), page.click("ul.lang a[lang=zh-CN]")]);
    assert.equal(await page.locator("main h1").innerText(), "告警");
    noProblems();
  });

  it("logs out, after which pages lead to the login page", async () => {
    await Promise.all([page.waitForLoadState("load"), page.click("header.top form[action='/logout'] button")]);
    await page.goto(`${origin}/search`);
    assert.equal(new URL(page.url()).pathname, "/login");
    noProblems();
  });
});
