// The authentication example: a WSBroker server whose worker (auth-worker.ts) accepts a connection
// only with a valid JWT at the upgrade, in the cookie `token` or in the URL, and refuses it with
// HTTP 401 otherwise.
//   npm run build && node lib/example/auth.js
// It prints a token for a demo user; AUTH_SECRET sets the signing secret, AUTH_PORT the port (8081;
// 0: a free one, printed), AUTH_ORIGINS the pages whose cookies count (default http://localhost:8080).
import * as path from 'node:path';
import { SignJWT } from 'jose';
import { start } from '@wsbroker/wsbroker';

const PORT = Number(process.env.AUTH_PORT ?? 8081);
const SECRET = new TextEncoder().encode(process.env.AUTH_SECRET ?? 'example-secret');

async function main(): Promise<void> {
  const { addresses: [{ port }] } = await start({ bind: `0.0.0.0:${PORT}`, workerPath: path.join(__dirname, 'auth-worker.js') });
  const demo = await new SignJWT().setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(SECRET);
  console.log(`Authentication example listening on ws://localhost:${port}`);
  console.log(`A token for user "alice", valid for an hour: ${demo}`);
  console.log(`Connect to ws://localhost:${port}/?token=${demo}`);
  console.log(`or send the cookie token=${demo}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
