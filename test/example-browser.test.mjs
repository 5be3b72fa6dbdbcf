// The chat example as people use it: two headless Chromium pages on the example's own page, driven
// through its form fields and buttons, across a restart of the server. A screenshot of the first
// page is left in test/artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Child, chatExamplePorts, root } from './helpers.mjs';
import { launchChromium, redisServer } from './harness.mjs';

const WAIT = { timeout: 15_000 };

/** Opens the example's page on httpPort in a new page of browser, and joins #lobby as alias. */
async function join(browser, httpPort, alias) {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const socket = page.waitForEvent('websocket', WAIT);
  await page.goto(`http://127.0.0.1:${httpPort}/`, WAIT);
  assert.equal((await socket).url(), `ws://127.0.0.1:${httpPort}/ws`, "the page's WebSocket is on the page's port");
  await page.locator('#status[data-state="connected"]', { hasText: 'Connected' }).waitFor(WAIT);
  await page.fill('#alias', alias);
  await page.fill('#room', 'lobby');
  await page.click('#join-form button');
  await page.locator('#room-line', { hasText: `You are ${alias} in #lobby` }).waitFor(WAIT);
  return page;
}

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

/**
 * Starts the example (lib/example/example.js) with env on `httpPort` (its page's and its
 * WebSocket's; 0: one the system picks); resolves with { server, httpPort }, the port bound.
 */
async function startExample(httpPort, env = {}) {
  const server = new Child([path.join(root, 'lib', 'example', 'example.js')], {
    env: { HTTP_PORT: String(httpPort), WSBROKER_LOG: 'warn', ...env },
  });
  return { server, httpPort: (await chatExamplePorts(server)).httpPort };
}

test('the chat example in Chromium: two people join, talk both ways, the server restarts, one leaves', { timeout: 120_000 }, async (t) => {
  let { server, httpPort } = await startExample(0);
  t.after(() => server.stop());

  const browser = await launchChromium(t);
  const open = (alias) => join(browser, httpPort, alias);

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
  // The pages reconnect to the address they were loaded from: the same port again.
  ({ server } = await startExample(httpPort));
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

test('the chat example as two nodes sharing Redis: a page on each, one room', { timeout: 120_000 }, async (t) => {
  const redis = await redisServer(t);
  if (!redis) return;
  const nodes = await Promise.all([0, 0].map((port) => startExample(port, { REDIS_URL: redis.url })));
  t.after(() => Promise.all(nodes.map((n) => n.server.stop())));
  assert.match(nodes[0].server.lines.at(-1), /a node of the cluster on REDIS_URL/);
  const browser = await launchChromium(t);
  const alice = await join(browser, nodes[0].httpPort, 'alice');
  const bob = await join(browser, nodes[1].httpPort, 'bob');
  await notice(alice, 'bob joined').waitFor(WAIT);
  await say(alice, 'hello from node one');
  await chat(bob, 'alice', 'hello from node one').waitFor(WAIT);
  await say(bob, 'hi from node two');
  await chat(alice, 'bob', 'hi from node two').waitFor(WAIT);
  await bob.close();
  await notice(alice, 'bob left').waitFor(WAIT);
});
