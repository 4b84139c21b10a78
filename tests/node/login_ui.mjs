// A person signing in to `portcullis login` in real Chromium
// (playwright-core, Debian /usr/bin/chromium): opens the sign-in URL the
// CLI printed, enters the device code when given, logs in at the
// provider's form (or picks the user on the `portcullis dev` issuer's
// page), consents, and stops at the page that says it is done.
//
// usage: node login_ui.mjs URL USER [USER_CODE]
// prints JSON {done, steps, text}
import { chromium } from 'playwright-core';

const [url, user, userCode] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking'],
});
const steps = [];
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(url);
  let done = false;
  for (let i = 0; i < 10 && !done; i++) {
    await page.waitForLoadState();
    const text = await page.textContent('body');
    if (/Signed in to Portcullis|Sign-in Success/i.test(text)) {
      done = true;
      break;
    }
    if (userCode && (await page.locator('input[name=user_code]:visible').count())) {
      steps.push('code');
      await page.fill('input[name=user_code]:visible', userCode);
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } else if (await page.locator('button.user').count()) {
      // The `portcullis dev` issuer: one button per demo user.
      steps.push('pick');
      await Promise.all([page.waitForNavigation(), page.click(`button.user[value=${user}]`)]);
    } else if (await page.locator('input[name=login]').count()) {
      steps.push('login');
      await page.fill('input[name=login]', user);
      await page.fill('input[name=password]', 'any');
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } else if (await page.locator('button:has-text("Continue")').count()) {
      steps.push('continue');
      await Promise.all([page.waitForNavigation(), page.locator('button:has-text("Continue")').first().click()]);
    } else {
      throw new Error(`unexpected page at ${page.url()}: ${text.slice(0, 300)}`);
    }
  }
  console.log(JSON.stringify({ done, steps, text: (await page.textContent('body')).trim().slice(0, 200) }));
} finally {
  await browser.close();
}
