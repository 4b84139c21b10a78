// An auditor in real Chromium (playwright-core, Debian /usr/bin/chromium):
// opens the gateway's audit viewer, signs in at the OIDC provider, opens
// the session SESSION_ID from the list (after trying the filter form),
// and reports what the timeline
// shows and the session cookie; optionally saves a screenshot.
//
// usage: node audit_ui.mjs ADMIN_URL USER SESSION_ID [SCREENSHOT.png]
import { chromium } from 'playwright-core';

const [base, user, session, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.setDefaultTimeout(20000);
  const resp = await page.goto(`${base}/audit/sessions`);
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'any');
  await page.click('button[type=submit]');
  await page.waitForLoadState();
  const cont = page.locator('button:has-text("Continue")');
  if (await cont.count()) {
    await cont.click();
  }
  await page.waitForLoadState();
  const status = (await page.textContent('body')).includes('not in an auditor group') ? 403 : 200;
  if (status === 403) {
    console.log(JSON.stringify({ status, text: (await page.textContent('body')).trim() }));
    process.exit(0);
  }
  await page.waitForSelector('table');
  const list = await page.textContent('table');
  // The filter form: another user's sessions hide this one; its own
  // user (AUDIT_FILTER_USER) shows it again.
  const link = `a[href="/audit/sessions/${session}"]`;
  const filtered = {};
  for (const [name, value] of [['other', 'nobody@example.com'], ['own', process.env.AUDIT_FILTER_USER || '']]) {
    await page.fill('form.filters input[name=user]', value);
    await Promise.all([page.waitForNavigation(), page.click('form.filters button[type=submit]')]);
    filtered[name] = { url: page.url(), links: await page.locator(link).count() };
  }
  await page.click(`a[href="/audit/sessions/${session}"]`);
  await page.waitForSelector('.stmt');
  const statements = await page.$$eval('.stmt pre.sql', (els) => els.map((e) => e.textContent));
  const badges = await page.$$eval('.stmt .badge', (els) => els.map((e) => e.textContent));
  const results = await page.$$eval('.stmt .result table', (els) => els.map((e) => e.textContent));
  const exportHref = await page.getAttribute('a[href$="/export"]', 'href');
  const exported = await (await page.request.get(new URL(exportHref, page.url()).toString())).text();
  if (shot) {
    await page.screenshot({ path: shot, fullPage: true });
  }
  // The session cookie, so the test can use the sign-in after a restart.
  const cookie = ((await page.context().cookies()).find((c) => c.name === 'pca_session') || {}).value || '';
  console.log(JSON.stringify({ status, list, filtered, statements, badges, results, exported_lines: exported.trim().split('\n').length, cookie }));
} finally {
  await browser.close();
}
