// The worker of the authentication example.
//
// A client proves who it is with a JWT (HS256, signed with AUTH_SECRET), in either of two ways:
// - at the upgrade, in the URL: ws://host:8081/?token=<JWT> (a browser cannot set headers on a
//   WebSocket); an invalid token is refused with HTTP 403;
// - once connected, with the message { type: 'authenticate', token: <JWT> }.
// Then { type: 'whoami' }, or { type: 'direct', to: userId, body } (sent to every connection of
// that user). A connection that has not authenticated gets { type: 'auth-required' } for anything
// else.
//
// Who the user is goes into the connection's token (setToken), which every later event carries,
// and the connection joins the channel `user:<id>`. But an event carries the token set when it was
// queued, so a message sent right after 'authenticate' carries none yet: this worker also keeps
// the sessions it has verified (all events of a connection come to the same worker), and auth.ts
// starts it with `ordered: true`, so that such a message waits until the verification is done.
import { jwtVerify } from 'jose';
import { send, sendToChannel, setToken, subscribe } from '@wsbroker/wsbroker';

const SECRET = new TextEncoder().encode(process.env.AUTH_SECRET ?? 'example-secret');

interface Session {
  userId: string;
  exp?: number;
}

const sessions = new Map<number, Session>();

const reply = (socketId: number, message: object): void => send(socketId, JSON.stringify(message));

/** The session a valid JWT proves (signature, HS256 only, `exp`, `nbf`); rejects otherwise. */
async function verify(jwt: string): Promise<Session> {
  const { payload } = await jwtVerify(jwt, SECRET, { algorithms: ['HS256'] });
  if (typeof payload.sub !== 'string') throw new Error('the token names no user');
  return { userId: payload.sub, exp: payload.exp };
}

function begin(socketId: number, session: Session): void {
  setToken(socketId, JSON.stringify(session));
  subscribe(socketId, `user:${session.userId}`);
}

export async function handleOpen(socketId: number, ip: string, headers: Record<string, string>, url: string): Promise<boolean> {
  const jwt = new URL(url, 'ws://localhost').searchParams.get('token');
  if (jwt === null) return true; // it may still authenticate with a message
  try {
    // Every event of this connection is queued after the upgrade, so all of them carry this token.
    begin(socketId, await verify(jwt));
    return true;
  } catch {
    return false; // HTTP 403
  }
}

export async function handleTextMessage(data: string, socketId: number, token?: Buffer): Promise<void> {
  let message: { type?: unknown; token?: unknown; to?: unknown; body?: unknown } | null;
  try {
    message = JSON.parse(data);
  } catch {
    message = null;
  }
  if (message === null || typeof message !== 'object') {
    reply(socketId, { type: 'error', body: 'Messages must be JSON objects' });
    return;
  }

  if (message.type === 'authenticate') {
    try {
      if (typeof message.token !== 'string') throw new Error('no token');
      const session = await verify(message.token);
      sessions.set(socketId, session);
      begin(socketId, session);
      reply(socketId, { type: 'authenticated', userId: session.userId });
    } catch {
      reply(socketId, { type: 'auth-error', body: 'Invalid token' });
    }
    return;
  }

  const session = sessions.get(socketId) ?? (token === undefined ? undefined : (JSON.parse(token.toString('utf8')) as Session));
  if (session === undefined) {
    reply(socketId, { type: 'auth-required', body: 'Please authenticate first' });
    return;
  }
  if (session.exp !== undefined && Date.now() / 1000 >= session.exp) {
    reply(socketId, { type: 'auth-required', body: 'Your token has expired, please authenticate again' });
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

export function handleClose(socketId: number): void {
  sessions.delete(socketId);
}
