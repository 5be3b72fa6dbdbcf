// The chat logic of the example, run in every worker thread.
//
// Client → server (JSON text):  { type: 'join', alias, room }   { type: 'message', body }
// Server → client:
//   { type: 'joined', room, alias }                   to the one who joined
//   { type: 'user-joined', alias, timestamp }         to the room
//   { type: 'user-left', alias, timestamp }           to the room (on leaving it or disconnecting)
//   { type: 'chat-message', alias, body, timestamp }  to the room
//   { type: 'error', body }                           to the sender
//
// Who a connection is (alias and room) lives in its token, as JSON, so that it reaches every later
// event, handleClose included, in whichever worker handles it. A worker also remembers the members
// it has seen: all events of a connection come to the same worker in order, so that memory is
// exact, and a message sent right after a join does not depend on the token of an event that was
// queued before the join was handled. After a worker is replaced, the token is what is left.
import { send, sendToChannel, setToken, subscribe, unsubscribe } from '@wsbroker/wsbroker';

const MAX_ALIAS = 20;
const MAX_ROOM = 30;
const MAX_BODY = 500;

interface Member {
  alias: string;
  room: string;
}

const members = new Map<number, Member>();

const roomChannel = (room: string): string => `room:${room}`;

function reply(socketId: number, message: object): void {
  send(socketId, JSON.stringify(message));
}

function toRoom(room: string, message: object): void {
  sendToChannel(roomChannel(room), JSON.stringify(message));
}

function fail(socketId: number, body: string): void {
  reply(socketId, { type: 'error', body });
}

function memberOf(socketId: number, token: Buffer | undefined): Member | undefined {
  const known = members.get(socketId);
  if (known !== undefined || token === undefined) return known;
  try {
    const parsed = JSON.parse(token.toString('utf8')) as Partial<Member>;
    if (typeof parsed.alias === 'string' && typeof parsed.room === 'string') return { alias: parsed.alias, room: parsed.room };
  } catch {
    // not ours
  }
  return undefined;
}

/** A trimmed, non-empty string of at most `max` characters, or undefined. */
function field(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  const s = value.trim();
  return s.length > 0 && [...s].length <= max ? s : undefined;
}

export function handleTextMessage(data: string, socketId: number, token?: Buffer): void {
  let message: { type?: unknown; alias?: unknown; room?: unknown; body?: unknown };
  try {
    message = JSON.parse(data);
  } catch {
    fail(socketId, 'Messages must be JSON');
    return;
  }
  if (message === null || typeof message !== 'object') {
    fail(socketId, 'Messages must be JSON objects');
    return;
  }
  const current = memberOf(socketId, token);

  switch (message.type) {
    case 'join': {
      const alias = field(message.alias, MAX_ALIAS);
      const room = field(message.room, MAX_ROOM);
      if (alias === undefined) return fail(socketId, `The alias must be 1 to ${MAX_ALIAS} characters`);
      if (room === undefined) return fail(socketId, `The room must be 1 to ${MAX_ROOM} characters`);
      if (current !== undefined) {
        // Joining another room (or the same one under another alias) leaves the old one.
        unsubscribe(socketId, roomChannel(current.room));
        toRoom(current.room, { type: 'user-left', alias: current.alias, timestamp: Date.now() });
      }
      const member = { alias, room };
      members.set(socketId, member);
      setToken(socketId, JSON.stringify(member));
      subscribe(socketId, roomChannel(room));
      reply(socketId, { type: 'joined', room, alias });
      toRoom(room, { type: 'user-joined', alias, timestamp: Date.now() });
      return;
    }
    case 'message': {
      if (current === undefined) return fail(socketId, 'Join a room before sending messages');
      const body = typeof message.body === 'string' ? message.body.trim() : '';
      if (body.length === 0) return fail(socketId, 'A message cannot be empty');
      if ([...body].length > MAX_BODY) return fail(socketId, `A message can have at most ${MAX_BODY} characters`);
      toRoom(current.room, { type: 'chat-message', alias: current.alias, body, timestamp: Date.now() });
      return;
    }
    default:
      fail(socketId, `Unknown message type ${JSON.stringify(message.type)}`);
  }
}

export function handleClose(socketId: number, token?: Buffer): void {
  const member = memberOf(socketId, token);
  members.delete(socketId);
  // The closed connection has already left every channel: this reaches the others only.
  if (member !== undefined) toRoom(member.room, { type: 'user-left', alias: member.alias, timestamp: Date.now() });
}
