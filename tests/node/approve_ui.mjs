// An approver in real Chromium (playwright-core, Debian /usr/bin/chromium):
// opens the approval link, logs in at the OIDC provider's login form (the
// e2e provider's form, or the `portcullis dev` issuer's page of demo
// users), approves or rejects with a comment, and reports what the page
// shows.
//
// usage: node approve_ui.mjs URL USER approve|reject COMMENT [SCREENSHOT.png]
import { chromium } from 'playwright-core';

const [url, user, action, comment, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.setDefaultTimeout(20000);
  await page.goto(url);
  await page.waitForSelector('input[name=login], button.user');
  if (await page.locator('button.user').count()) {
    // The dev issuer: one button per demo user.
    await page.click(`button.user[value=${user}]`);
  } else {
    // The provider's login form, then its consent prompt.
    await page.fill('input[name=login]', user);
    await page.fill('input[name=password]', 'any');
    await page.click('button[type=submit]');
    await page.waitForLoadState();
    const cont = page.locator('button:has-text("Continue")');
    if (await cont.count()) {
      await cont.click();
    }
  }
  await page.waitForSelector('pre.sql');
  const statement = await page.textContent('pre.sql');
  const before = await page.textContent('h1 .badge');
  if (shot) {
    await page.screenshot({ path: shot, fullPage: true });
  }
  // A form post without the page's CSRF token is refused.
  const forged = (await page.request.post(page.url(), { form: { outcome: action, csrf: 'forged' } })).status();
  if (comment) {
    await page.fill('textarea[name=comment]', comment);
  }
  await page.click(`button[value=${action}]`);
  await page.waitForSelector('.notice');
  const notice = await page.textContent('.notice');
  const after = await page.textContent('h1 .badge');
  // The pending list, as the approver sees it now.
  const requester = process.env.REQUESTER || 'riley';
  const connection = process.env.CONNECTION || 'app';
  await page.goto(new URL(`/requests?state=all&requester=${requester}&connection=${connection}`, url).toString());
  const history = await page.textContent('table');
  console.log(JSON.stringify({ statement, before, forged, notice, after, history }));
} finally {
  await browser.close();
}
