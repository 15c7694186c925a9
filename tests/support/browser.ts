// Headless Chromium for end-to-end tests of the dashboard, driven by playwright-core. The browser
// is Debian's `chromium` package (scripts/install-test-deps.sh), never one Playwright downloads.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.MQOTA_TEST_CHROMIUM ?? '/usr/bin/chromium';

// The machine has no outside network: Chromium's background services (updates, sync, safe
// browsing) would only produce refused connections.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and Content-Security-Policy violations seen so far. */
  problems: string[];
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile and one 1280×800 page that trusts the test server. */
export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM_PATH}: run \`sudo bash scripts/install-test-deps.sh\` (Debian package chromium) or set MQOTA_TEST_CHROMIUM`);
  }
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-chromium-'));
  // launchPersistentContext is how Playwright takes an explicit --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 800 },
    // The test server's certificate comes from a throwaway CA the browser does not know.
    ignoreHTTPSErrors: true,
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? await context.newPage();
  // A condition that takes longer than this is a failure, with the locator in the message. The
  // bound is generous: Chromium beside a CPU-heavy process is slow, not broken.
  page.setDefaultTimeout(30_000);
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  return {
    context, page, problems,
    async close() {
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
