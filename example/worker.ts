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
// Who a connection is (alias and room) lives in its token, a typed JSON value (defineWorker<Member>),
// so that it reaches every later event, handleClose included, in whichever worker handles it. A
// worker also remembers the members it has seen: an event carries the token set before it was
// queued, and a message the client sends right behind its join is queued before the join is
// handled, so its token is still the one before. All events of a connection come to the same worker
// in order, so that memory is exact; after a worker is replaced, the token is what is left.
import { defineWorker, send, sendToChannel, setToken, subscribe, unsubscribe } from '@wsbroker/wsbroker';

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

/** The member this worker saw join last, else the one the token names. */
function memberOf(socketId: number, token: Member | undefined): Member | undefined {
  return members.get(socketId) ?? token;
}

/** A trimmed, non-empty string of at most `max` characters, or undefined. */
function field(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  const s = value.trim();
  return s.length > 0 && [...s].length <= max ? s : undefined;
}

function handleTextMessage(data: string, socketId: number, token: Member | undefined): void {
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
      setToken(socketId, member);
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

function handleClose(socketId: number, token: Member | undefined): void {
  const member = memberOf(socketId, token);
  members.delete(socketId);
  // The closed connection has already left every channel: this reaches the others only.
  if (member !== undefined) toRoom(member.room, { type: 'user-left', alias: member.alias, timestamp: Date.now() });
}

export default defineWorker<Member>({ handleTextMessage, handleClose });
