// Drives Debian's Chromium (headless, through playwright-core) through caddymcp's
// dashboard as a person would: opens <base>/ui/, is sent to the built-in server's
// sign-in page, signs in, reads the server list, opens a server's page, unfolds a
// client's configuration and presses Copy, then reads the clipboard, and presses
// Check now.
//
//   node dashboard-browser.mjs <base url> <user> <password> <server> <client>
//
// Prints one JSON line: {user, servers, url, clipboard, config, done, consoleErrors} or {fatal}.
import { chromium } from 'playwright-core';

const [base, user, password, server, client] = process.argv.slice(2);
const out = { consoleErrors: [] };
let browser, page;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(base).origin });
  page = await context.newPage();
  // A Content-Security-Policy refusal (of the copy script, say) shows as a console error.
  page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
  await page.goto(base + '/ui/');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(base + '/ui/'), page.click('button[type=submit]')]);
  out.user = await page.textContent('#user');
  out.servers = await page.$$eval('#servers td:first-child a', (as) => as.map((a) => a.textContent));
  await Promise.all([page.waitForURL(`${base}/ui/servers/${server}`), page.click(`#servers a[href$="/servers/${server}"]`)]);
  out.url = await page.textContent('#mcp-url');
  await page.click(`#client-${client} summary`);
  await page.click(`#client-${client} button[data-copy="cfg-${client}"]`);
  await page.waitForFunction((c) => document.querySelector(`#client-${c} button`).textContent !== 'Copy', client);
  out.config = await page.textContent(`#cfg-${client}`);
  out.clipboard = await page.evaluate(() => navigator.clipboard.readText());
  // The page's own form, as the browser posts it (its cookie, its Origin).
  await Promise.all([page.waitForURL(/done=checked/), page.click('#actions button[value=check]')]);
  out.done = await page.textContent('#done');
} catch (e) {
  out.fatal = String(e && e.stack || e);
  if (page) out.fatal += '\nat ' + page.url() + ':\n' + (await page.content().catch(() => '')).slice(0, 3000);
} finally {
  if (browser) await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
