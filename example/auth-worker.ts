// The worker of the authentication example.
//
// Client → server: { type: 'authenticate', token: JWT }, then { type: 'whoami' } or
// { type: 'direct', to: userId, body } (sent to every connection of that user).
// A connection that has not authenticated gets { type: 'auth-required' } for anything else.
// Once the JWT checks out, who the user is is stored as the connection's token (setToken), so
// every later event carries it, and the connection joins the channel `user:<id>`.
import { send, sendToChannel, setToken, subscribe } from '@wsbroker/wsbroker';
import { verifyJwt } from './jwt.js';

const SECRET = process.env.AUTH_SECRET ?? 'example-secret';

interface Session {
  userId: string;
  exp?: number;
}

const reply = (socketId: number, message: object): void => send(socketId, JSON.stringify(message));

export function handleTextMessage(data: string, socketId: number, currentToken?: Buffer): void {
  let message: { type?: unknown; token?: unknown; to?: unknown; body?: unknown };
  try {
    message = JSON.parse(data);
  } catch {
    reply(socketId, { type: 'error', body: 'Messages must be JSON' });
    return;
  }

  if (message.type === 'authenticate') {
    try {
      if (typeof message.token !== 'string') throw new Error('no token');
      const claims = verifyJwt(message.token, SECRET);
      const session: Session = { userId: claims.sub, exp: claims.exp };
      setToken(socketId, JSON.stringify(session));
      subscribe(socketId, `user:${session.userId}`);
      reply(socketId, { type: 'authenticated', userId: session.userId });
    } catch {
      reply(socketId, { type: 'auth-error', body: 'Invalid token' });
    }
    return;
  }

  if (currentToken === undefined) {
    reply(socketId, { type: 'auth-required', body: 'Please authenticate first' });
    return;
  }
  const session = JSON.parse(currentToken.toString('utf8')) as Session;
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
