// The chat example as people use it: two headless Chromium pages on the example's own page, driven
// through its form fields and buttons, across a restart of the server. A screenshot of the first
// page is left in test/artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Child, freePort, root } from './helpers.mjs';
import { launchChromium } from './harness.mjs';

const WAIT = { timeout: 15_000 };

test('the chat example in Chromium: two people join, talk both ways, the server restarts, one leaves', { timeout: 120_000 }, async (t) => {
  const [wsPort, httpPort] = [await freePort(), await freePort()];
  let server;
  const startExample = async () => {
    server = new Child([path.join(root, 'lib', 'example', 'example.js')], {
      env: { WS_PORT: String(wsPort), HTTP_PORT: String(httpPort), WSBROKER_LOG: 'warn' },
    });
    await server.waitForLine(/^Chat example: open http:\/\/localhost:\d+/, 30_000);
  };
  t.after(() => server.stop());
  await startExample();

  const browser = await launchChromium(t);
  const open = async (alias) => {
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
    await page.goto(`http://127.0.0.1:${httpPort}/`, WAIT);
    await page.locator('#status[data-state="connected"]', { hasText: 'Connected' }).waitFor(WAIT);
    await page.fill('#alias', alias);
    await page.fill('#room', 'lobby');
    await page.click('#join-form button');
    await page.locator('#room-line', { hasText: `You are ${alias} in #lobby` }).waitFor(WAIT);
    return page;
  };
  const notice = (page, text) => page.locator('#messages li.notice .text', { hasText: new RegExp(`^${text}$`) });
  const chat = (page, alias, body) =>
    page
      .locator('#messages li.chat')
      .filter({ has: page.locator('.alias', { hasText: new RegExp(`^${alias}$`) }) })
      .filter({ has: page.locator('.body', { hasText: new RegExp(`^${body}$`) }) });
  const say = async (page, body) => {
    await page.fill('#message', body);
    await page.click('#message-form button');
  };

  const alice = await open('alice');
  await notice(alice, 'alice joined').waitFor(WAIT);
  const bob = await open('bob');
  await notice(alice, 'bob joined').waitFor(WAIT);

  await say(alice, 'hello bob');
  await chat(bob, 'alice', 'hello bob').waitFor(WAIT);
  await chat(alice, 'alice', 'hello bob').waitFor(WAIT);
  await say(bob, 'hi alice ✓');
  await chat(alice, 'bob', 'hi alice ✓').waitFor(WAIT);
  assert.equal(await alice.inputValue('#message'), '', 'the message box is emptied once sent');

  // The server goes away: both pages say so, come back by themselves, and rejoin the room.
  await server.stop();
  for (const page of [alice, bob]) {
    await page.locator('#status[data-state="disconnected"]', { hasText: /^Disconnected, reconnecting in [\d.]+ s…$/ }).waitFor(WAIT);
    assert.equal(await page.isDisabled('#message'), true, 'no typing while disconnected');
  }
  await startExample();
  for (const [page, alias] of [[alice, 'alice'], [bob, 'bob']]) {
    await page.locator('#status[data-state="connected"]', { hasText: 'Connected' }).waitFor(WAIT);
    await page.locator('#room-line', { hasText: `You are ${alias} in #lobby` }).waitFor(WAIT);
  }
  await say(bob, 'still here?');
  await chat(alice, 'bob', 'still here\\?').waitFor(WAIT);
  await say(alice, 'yes');
  await chat(bob, 'alice', 'yes').waitFor(WAIT);

  // Bob closes his tab: Alice is told.
  await bob.close();
  await notice(alice, 'bob left').waitFor(WAIT);

  const dir = path.join(root, 'test', 'artifacts');
  mkdirSync(dir, { recursive: true });
  const shot = path.join(dir, 'chat-example.png');
  await alice.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`screenshot: ${shot}`);
});
