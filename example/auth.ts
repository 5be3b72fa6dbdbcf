// The authentication example: a WSBroker server whose worker (auth-worker.ts) lets a connection do
// nothing before it has sent a valid JWT.
//   npm run build && node lib/example/auth.js
// It prints a token for a demo user; AUTH_SECRET sets the signing secret, AUTH_PORT the port (8081).
import * as path from 'node:path';
import { start } from '@wsbroker/wsbroker';
import { signJwt } from './jwt.js';

const PORT = Number(process.env.AUTH_PORT ?? 8081);
const SECRET = process.env.AUTH_SECRET ?? 'example-secret';

async function main(): Promise<void> {
  await start({ bind: `0.0.0.0:${PORT}`, workerPath: path.join(__dirname, 'auth-worker.js') });
  const demo = signJwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);
  console.log(`Authentication example listening on ws://localhost:${PORT}`);
  console.log(`A token for user "alice", valid for an hour: ${demo}`);
  console.log(`Send: {"type":"authenticate","token":"${demo}"}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
