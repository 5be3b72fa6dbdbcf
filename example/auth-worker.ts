// The worker of the authentication example.
//
// A client proves who it is at the upgrade, with a JWT (HS256, signed with AUTH_SECRET) in either
// of two places:
// - the cookie `token`, which a login page of the site would set: the browser sends it with the
//   upgrade. It is taken only from a page of an origin in AUTH_ORIGINS (or from a client that
//   sends no Origin, which is no browser): any site's page can open a WebSocket to this server,
//   and the browser would send it the user's cookie too;
// - the URL, ws://host:8081/?token=<JWT> (a browser cannot set headers on a WebSocket).
// Without a valid token the upgrade is refused with HTTP 401 and a WWW-Authenticate header.
// Once connected: { type: 'whoami' }, or { type: 'direct', to: userId, body } (sent to every
// connection of that user). A message after the token has expired closes the connection with
// code 4001: the client connects again with a fresh token.
//
// Who the user is goes into the connection's token (setToken, a typed JSON value: defineWorker<Session>)
// in handleOpen, before the upgrade is answered, so every event of the connection carries it; the
// connection joins the channel `user:<id>`.
import { jwtVerify } from 'jose';
import { close, defineWorker, send, sendToChannel, setToken, subscribe, type OpenRefusal, type OpenRequest } from '@wsbroker/wsbroker';

const SECRET = new TextEncoder().encode(process.env.AUTH_SECRET ?? 'example-secret');
const ORIGINS = new Set((process.env.AUTH_ORIGINS ?? 'http://localhost:8080').split(','));

interface Session {
  userId: string;
  exp?: number;
}

const reply = (socketId: number, message: object): void => {
  send(socketId, JSON.stringify(message));
};

/** The 401 answer; `error` is RFC 6750's, for a token that was given but is not valid. */
function unauthorized(error?: string): OpenRefusal {
  const challenge = error === undefined ? 'Bearer realm="wsbroker-example"' : `Bearer realm="wsbroker-example", error="${error}"`;
  return { status: 401, headers: { 'WWW-Authenticate': challenge }, body: error === undefined ? 'A token is required' : 'Invalid token' };
}

/** The session a valid JWT proves (signature, HS256 only, `exp`, `nbf`); rejects otherwise. */
async function verify(jwt: string): Promise<Session> {
  const { payload } = await jwtVerify(jwt, SECRET, { algorithms: ['HS256'] });
  if (typeof payload.sub !== 'string') throw new Error('the token names no user');
  return { userId: payload.sub, exp: payload.exp };
}

async function handleOpen(socketId: number, ip: string, headers: Record<string, string>, url: string, request: OpenRequest): Promise<true | OpenRefusal> {
  const fromPage = headers.origin === undefined || ORIGINS.has(headers.origin);
  const jwt = request.query.get('token') ?? (fromPage ? request.cookies.token : undefined);
  if (jwt === undefined) return unauthorized();
  let session: Session;
  try {
    session = await verify(jwt);
  } catch {
    return unauthorized('invalid_token');
  }
  setToken(socketId, session);
  subscribe(socketId, `user:${session.userId}`);
  return true;
}

function handleTextMessage(data: string, socketId: number, session: Session | undefined): void {
  if (session === undefined) return; // every accepted connection has one, set in handleOpen
  if (session.exp !== undefined && Date.now() / 1000 >= session.exp) {
    close(socketId, 4001, 'token expired');
    return;
  }
  let message: { type?: unknown; to?: unknown; body?: unknown } | null;
  try {
    message = JSON.parse(data);
  } catch {
    message = null;
  }
  if (message === null || typeof message !== 'object') {
    reply(socketId, { type: 'error', body: 'Messages must be JSON objects' });
    return;
  }
  switch (message.type) {
    case 'whoami':
      reply(socketId, { type: 'whoami', userId: session.userId });
      break;
    case 'direct':
      if (typeof message.to !== 'string' || typeof message.body !== 'string') {
        reply(socketId, { type: 'error', body: 'direct needs `to` and `body`' });
        break;
      }
      sendToChannel(`user:${message.to}`, JSON.stringify({ type: 'direct', from: session.userId, body: message.body }));
      break;
    default:
      reply(socketId, { type: 'error', body: `Unknown message type ${JSON.stringify(message.type)}` });
  }
}

export default defineWorker<Session>({ handleOpen, handleTextMessage });
