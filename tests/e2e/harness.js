// Shared machinery for the end-to-end tests: the real server binary, headless
// Chromium through playwright-core, a latency-adding TCP proxy, and helpers that
// wait for conditions instead of sleeping.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '../..');
const SERVER_BIN = path.resolve(REPO_ROOT, process.env.WT_BIN || 'target/release/watch-together');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Generous: the machine has two cores shared with other work. */
export const WAIT_MS = 30_000;

/**
 * Starts the release server on a free port. Per-IP limits are lifted because every
 * page of a test connects from 127.0.0.1.
 */
export async function startServer(extraArgs = [], { mediaDir = path.join(REPO_ROOT, 'media'), dataDir = null, port = 0 } = {}) {
  const args = [
    // A port of its own unless a test restarts a server where its pages expect it.
    '--port', String(port),
    '--media-dir', mediaDir,
    // Rooms in memory unless a test keeps them on disk (to restart the server over them).
    ...(dataDir ? ['--data-dir', dataDir] : ['--ephemeral']),
    '--max-sessions-per-ip', '0',
    '--connects-per-ip-per-minute', '0',
    '--rooms-per-ip-per-minute', '0',
    ...extraArgs,
  ];
  // WT_FRONTEND_DIR lets a developer test frontend edits without rebuilding the binary.
  if (process.env.WT_FRONTEND_DIR) args.push('--frontend-dir', path.resolve(REPO_ROOT, process.env.WT_FRONTEND_DIR));
  const child = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const url = await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`server did not start within ${WAIT_MS} ms; stderr:\n${stderr}`)), WAIT_MS);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /listening on (http:\/\/[^\s]+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening; stderr:\n${stderr}`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${SERVER_BIN}: ${error.message} (build it with cargo build --release, or set WT_BIN)`));
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const exited = once(child, 'exit');
      const timeout = new Promise((resolve) => setTimeout(resolve, 10_000, 'timeout'));
      if ((await Promise.race([exited, timeout])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/**
 * @param {object} [options]
 * @param {string} [options.autoplayPolicy] Chromium's policy; the default lets media start
 *   without a click (the tests are about sync). Pass 'document-user-activation-required' to
 *   get a real browser's behaviour.
 */
export async function launchBrowser({ autoplayPolicy = 'no-user-gesture-required' } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      `--autoplay-policy=${autoplayPolicy}`,
      // Pages of one test play side by side; none of them may be throttled as "hidden".
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

/**
 * Captures the real clock before any page script runs, and records (real time,
 * media position) pairs on demand. The real clock is what the tests measure sync
 * against, so a page whose own clock is shifted cannot hide its error.
 */
function installSampler() {
  const realNow = performance.now.bind(performance);
  const origin = performance.timeOrigin;
  const samples = [];
  let timer = null;
  Object.defineProperty(window, '__sampler', {
    value: Object.freeze({
      realEpochMs: () => origin + realNow(),
      start(intervalMs) {
        samples.length = 0;
        clearInterval(timer);
        timer = setInterval(() => {
          const hook = window.__wt;
          const position = hook ? hook.position() : null;
          const state = hook ? hook.state() : null;
          samples.push([origin + realNow(), position, state && state.playback ? state.playback.seq : -1, hook ? hook.serverNow() : null, state ? state.driftMs : null]);
        }, intervalMs);
      },
      stop() {
        clearInterval(timer);
        return samples.splice(0);
      },
    }),
  });
}

/** Shifts this page's clocks (Date.now and performance.now) by `shiftMs`. */
function shiftClocks(shiftMs) {
  const perfNow = performance.now.bind(performance);
  const dateNow = Date.now;
  performance.now = () => perfNow() + shiftMs;
  Date.now = () => dateNow() + shiftMs;
}

/**
 * Opens `url` in a fresh browser context (own storage: a different person),
 * answers the name prompt and waits until joined.
 */
export async function openRoomPage(browser, url, name, { clockShiftMs = 0, join = true, rememberedName = null, setupContext = null } = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  await context.addInitScript(installSampler);
  if (clockShiftMs) await context.addInitScript(shiftClocks, clockShiftMs);
  // Before the page loads anything: e.g. routes that shape its media requests.
  if (setupContext) await setupContext(context);
  // A name remembered from an earlier visit: the page joins without any click.
  if (rememberedName) await context.addInitScript((n) => localStorage.setItem('wt:name', n), rememberedName);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  // The server's Content-Security-Policy: anything it blocks is a bug of the page.
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content.Security.Policy/i.test(message.text())) problems.push(`csp: ${message.text()}`);
  });
  page.on('dialog', (dialog) => {
    problems.push(`dialog: ${dialog.message()}`);
    dialog.dismiss();
  });
  page.problems = problems;
  await page.goto(url);
  if (rememberedName) {
    // Nothing is evaluated in the page here: Playwright's evaluate counts as a user
    // gesture, which would lift the autoplay block some tests need to see.
  } else if (join) {
    await page.locator('#name-input').fill(name);
    await page.locator('#name-submit').click();
    await waitJoined(page);
  }
  return page;
}

export async function waitJoined(page) {
  await waitInPage(page, () => window.__wt && window.__wt.state().connection === 'open' && !!window.__wt.state().me);
}

/**
 * Waits until `check` is truthy in the page, asking every `interval` ms. `check` is a
 * function called with `arg`, or an expression as source text. Playwright's own
 * waitForFunction compiles its predicate inside the page, which the app's
 * Content-Security-Policy (no `eval`) refuses; `page.evaluate` goes through the DevTools
 * protocol, which the policy does not govern.
 */
export async function waitInPage(page, check, arg = null, { timeout = WAIT_MS, interval = 25 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const done = typeof check === 'string' ? await page.evaluate(check) : await page.evaluate(check, arg);
    if (done) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${String(check).slice(0, 300)}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** The page's state snapshot from the test hook. */
export function stateOf(page) {
  return page.evaluate(() => window.__wt.state());
}

/** Waits until `predicate(state, arg)` holds on the page; `predicate` runs in the browser. */
export async function waitState(page, predicate, arg, timeout = WAIT_MS) {
  const expression = `!!window.__wt && (${predicate.toString()})(window.__wt.state(), ${JSON.stringify(arg ?? null)})`;
  await waitInPage(page, expression, null, { timeout });
}

/** Waits until the page's player is running near `position` (seconds) of the room clock. */
export async function waitPlayingNear(page, { seq, toleranceMs = 150 } = {}) {
  await waitInPage(
    page,
    ([minSeq, tolerance]) => {
      const hook = window.__wt;
      if (!hook) return false;
      const s = hook.state();
      if (!s.playback || s.playback.paused || s.playback.seq < minSeq || !s.playerReady || s.playerPaused) return false;
      const position = hook.position();
      const expected = hook.expected();
      return position !== null && expected !== null && Math.abs(position - expected) * 1000 < tolerance;
    },
    [seq ?? 0, toleranceMs],
  );
}

/** The sync tests' conditions: one page believes it is almost five seconds earlier... */
export const CLOCK_SHIFT_MS = -4_750;
/** ...and one reaches the server through a link this slow each way, with this much jitter. */
export const PROXY_DELAY_MS = 40;
export const PROXY_JITTER_MS = 20;

/**
 * The three pages the sync tests measure, in the host's room: the host, a page whose own
 * clock is CLOCK_SHIFT_MS off, and one behind a delay proxy (stopped through `defer`).
 * Returns them with the names the reports give them.
 */
export async function joinShiftedAndDelayed(browser, server, host, defer) {
  const proxy = await startDelayProxy(server.port, { delayMs: PROXY_DELAY_MS, jitterMs: PROXY_JITTER_MS });
  defer(() => proxy.stop());
  const invite = new URL(await host.locator('#invite-link').inputValue());
  const shifted = await openRoomPage(browser, invite.href, 'Shifted', { clockShiftMs: CLOCK_SHIFT_MS });
  const delayed = await openRoomPage(browser, `http://127.0.0.1:${proxy.port}${invite.pathname}`, 'Delayed');
  return {
    shifted,
    delayed,
    pages: [host, shifted, delayed],
    names: ['host (direct)', `shifted clock (${CLOCK_SHIFT_MS} ms)`, `delayed link (${PROXY_DELAY_MS}±${PROXY_JITTER_MS} ms each way)`],
  };
}

/**
 * A TCP proxy that delays every chunk in both directions by `delayMs` ± `jitterMs`.
 * Chunks keep their order (a chunk never overtakes the one before it), like a real
 * network path with queueing jitter.
 */
export async function startDelayProxy(targetPort, { delayMs = 40, jitterMs = 20, random = Math.random } = {}) {
  const sockets = new Set();
  // One FIFO queue and one timer per direction: separate timers per chunk could fire
  // out of order (timer resolution is 1 ms), which would corrupt the byte stream.
  const pipeDelayed = (from, to) => {
    const queue = [];
    let timer = null;
    let ended = false;
    const drain = () => {
      timer = null;
      const now = Date.now();
      while (queue.length && queue[0].due <= now) {
        const { chunk } = queue.shift();
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length) timer = setTimeout(drain, queue[0].due - now);
      else if (ended && !to.destroyed) to.end();
    };
    from.on('data', (chunk) => {
      const last = queue.length ? queue[queue.length - 1].due : 0;
      queue.push({ chunk, due: Math.max(last, Date.now() + delayMs + (random() * 2 - 1) * jitterMs) });
      if (timer === null) timer = setTimeout(drain, queue[0].due - Date.now());
    });
    from.on('end', () => {
      ended = true;
      if (timer === null) drain();
    });
    from.on('error', () => to.destroy());
    from.on('close', () => {
      if (!ended) to.destroy();
    });
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    pipeDelayed(client, upstream);
    pipeDelayed(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    /** Cuts every open connection (as a network failure would) but keeps accepting new ones. */
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Runs `fn` with cleanups registered through `defer`, always running them in reverse order. */
export async function withCleanup(fn) {
  const cleanups = [];
  const defer = (cleanup) => cleanups.push(cleanup);
  try {
    return await fn(defer);
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  }
}

/**
 * The common start of a room test: a server and a browser (both cleaned up through `defer`),
 * a room created on the landing page by its host, and one joined page per guest name.
 */
export async function startRoom(defer, guestNames = ['Bob']) {
  const server = await startServer();
  defer(() => server.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());
  const host = await createRoomViaLanding(browser, server.url);
  const invite = await host.locator('#invite-link').inputValue();
  const guests = [];
  for (const name of guestNames) guests.push(await openRoomPage(browser, invite, name));
  return { server, browser, host, invite, guests };
}

/**
 * Creates a room through the landing page UI and returns the host page on the room; its first
 * video is `videoUrl` typed in, else `video` picked from the library.
 */
export async function createRoomViaLanding(browser, serverUrl, { name = 'Test room', video = '/media/clip-a-60s.mp4', videoUrl = null, hostName = 'Ann', control = 'host' } = {}) {
  const page = await openRoomPage(browser, `${serverUrl}/`, hostName, { join: false });
  await page.locator('#room-name').fill(name);
  if (control === 'everyone') await page.locator('input[name="control"][value="everyone"]').check();
  if (videoUrl) {
    await page.locator('#first-video').fill(videoUrl);
  } else if (video) {
    await page.locator('#library-field:not([hidden])').waitFor({ timeout: WAIT_MS });
    await page.locator('#library-select').selectOption(video);
  }
  await page.locator('#create-button').click();
  await page.waitForURL(/\/r\/[^/]+$/, { timeout: WAIT_MS });
  await page.locator('#name-input').fill(hostName);
  await page.locator('#name-submit').click();
  await waitJoined(page);
  return page;
}

/**
 * Linear interpolation of a page's sampled position (s) at real time t, or null without
 * samples close around t. `cursor` ({value}) makes a sweep over increasing t linear.
 */
export function interpolatePosition(samples, t, cursor = { value: 0 }) {
  let i = cursor.value;
  while (i + 1 < samples.length && samples[i + 1][0] <= t) i += 1;
  cursor.value = i;
  const a = samples[i];
  const b = samples[i + 1];
  if (!a || !b || a[0] > t || b[0] - a[0] > 200 || a[1] === null || b[1] === null) return null;
  // A seek inside this interval is a jump, not motion: take the nearer sample.
  if (Math.abs(b[1] - a[1]) > 1) return t - a[0] < b[0] - t ? a[1] : b[1];
  return a[1] + ((b[1] - a[1]) * (t - a[0])) / (b[0] - a[0]);
}

/** Inter-page spreads (max - min position, ms) on a grid over [fromReal, toReal], sorted. */
export function spreads(samplesByPage, fromReal, toReal, gridMs = 10) {
  const cursors = samplesByPage.map(() => ({ value: 0 }));
  const out = [];
  for (let t = fromReal; t <= toReal; t += gridMs) {
    const values = samplesByPage.map((samples, i) => interpolatePosition(samples, t, cursors[i]));
    if (values.some((v) => v === null)) continue;
    out.push((Math.max(...values) - Math.min(...values)) * 1000);
  }
  return out.sort((a, b) => a - b);
}

export async function startSamplers(pages, everyMs = 15) {
  await Promise.all(pages.map((page) => page.evaluate((every) => window.__sampler.start(every), everyMs)));
}

export async function stopSamplers(pages) {
  return Promise.all(pages.map((page) => page.evaluate(() => window.__sampler.stop())));
}

/** Percentile of a sorted array (nearest rank). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/**
 * Inter-page spread over [fromReal, fromReal + windowMs]: percentiles over the whole window
 * and over its second half (settled), and how far each page's media advanced (s), which
 * shows that every page was playing through it.
 */
export function spreadStats(samplesByPage, fromReal, windowMs, gridMs = 10) {
  const all = spreads(samplesByPage, fromReal, fromReal + windowMs, gridMs);
  const settled = spreads(samplesByPage, fromReal + windowMs / 2, fromReal + windowMs, gridMs);
  const advanced = samplesByPage.map((samples) => {
    const cursor = { value: 0 };
    const from = interpolatePosition(samples, fromReal + 50, cursor);
    const to = interpolatePosition(samples, fromReal + windowMs, cursor);
    return from === null || to === null ? NaN : Number((to - from + 0.05).toFixed(3));
  });
  const summary = (sorted) => ({ p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) ?? NaN });
  return { points: all.length, ...summary(all), settled: summary(settled), advanced };
}

/** One line of figures for spreadStats' result. */
export function formatSpread(label, stats, windowMs) {
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  return `# ${label}: inter-page spread over ${windowMs / 1000} s (${stats.points} points): p50 ${f(stats.p50)} ms, p95 ${f(stats.p95)} ms, max ${f(stats.max)} ms; `
    + `last ${windowMs / 2000} s: p50 ${f(stats.settled.p50)} ms, p95 ${f(stats.settled.p95)} ms, max ${f(stats.settled.max)} ms; advanced ${stats.advanced.join(' / ')} s`;
}

/** Server ms minus real epoch ms, measured on an unshifted, directly connected page. */
export function serverMinusReal(page) {
  return page.evaluate(() => window.__wt.serverNow() - window.__sampler.realEpochMs());
}

/** Waits until real time (the machine's clock, as the samplers see it) has passed `untilReal`. */
export async function waitUntilReal(page, untilReal, timeout = WAIT_MS) {
  await waitInPage(page, (until) => window.__sampler.realEpochMs() >= until, untilReal, { timeout, interval: 100 });
}
