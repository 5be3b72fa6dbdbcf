// The chat page: one WebSocket to the broker (on this page's port at /ws, or on the port /config.js names), a join form,
// a message box, the last 100 messages, and reconnects with back-off while the server is away.
'use strict';

const WS_PORT = window.CHAT_WS_PORT;
const MAX_MESSAGES = 100;
// After a drop the first retry comes soon (a restarting server is back within a second or two),
// then each wait doubles up to 10 s so that a server down for long is not hammered by every tab.
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 10_000;

const statusLine = document.getElementById('status');
const joinForm = document.getElementById('join-form');
const aliasInput = document.getElementById('alias');
const roomInput = document.getElementById('room');
const roomLine = document.getElementById('room-line');
const list = document.getElementById('messages');
const messageForm = document.getElementById('message-form');
const messageInput = document.getElementById('message');
const sendButton = messageForm.querySelector('button');

let socket = null;
let joined = null; // { alias, room } once the server confirmed a join
let wanted = null; // the last join asked for, sent again after a reconnect
let retryMs = RECONNECT_FIRST_MS;

function setStatus(text, state) {
  statusLine.textContent = text;
  statusLine.dataset.state = state;
}

function setChatEnabled(enabled) {
  messageInput.disabled = !enabled;
  sendButton.disabled = !enabled;
  messageInput.placeholder = enabled ? `Message #${joined.room}` : 'Join a room to chat';
}

function time(timestamp) {
  return new Date(timestamp || Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function show(kind, parts) {
  const item = document.createElement('li');
  item.className = kind;
  for (const [className, text] of parts) {
    const span = document.createElement('span');
    span.className = className;
    span.textContent = text; // never innerHTML: aliases and bodies come from other users
    item.append(span);
  }
  list.append(item);
  while (list.children.length > MAX_MESSAGES) list.firstElementChild.remove();
  item.scrollIntoView({ block: 'end' });
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function handle(message) {
  switch (message.type) {
    case 'joined':
      joined = { alias: message.alias, room: message.room };
      roomLine.hidden = false;
      roomLine.textContent = `You are ${message.alias} in #${message.room}`;
      setChatEnabled(true);
      messageInput.focus();
      break;
    case 'user-joined':
      show('notice', [['time', time(message.timestamp)], ['text', `${message.alias} joined`]]);
      break;
    case 'user-left':
      show('notice', [['time', time(message.timestamp)], ['text', `${message.alias} left`]]);
      break;
    case 'chat-message':
      show('chat', [['time', time(message.timestamp)], ['alias', message.alias], ['body', message.body]]);
      break;
    case 'error':
      show('error', [['time', time()], ['text', message.body]]);
      break;
  }
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  setStatus('Connecting…', 'connecting');
  socket = new WebSocket(WS_PORT ? `${scheme}://${location.hostname}:${WS_PORT}` : `${scheme}://${location.host}/ws`);
  socket.addEventListener('open', () => {
    setStatus('Connected', 'connected');
    retryMs = RECONNECT_FIRST_MS;
    if (wanted) send({ type: 'join', ...wanted });
  });
  socket.addEventListener('message', (event) => {
    try {
      handle(JSON.parse(event.data));
    } catch (err) {
      console.error('Bad message from the server', event.data, err);
    }
  });
  socket.addEventListener('close', () => {
    joined = null;
    setChatEnabled(false);
    if (wanted) roomLine.textContent = `Not connected: you will rejoin #${wanted.room} as ${wanted.alias}`;
    setStatus(`Disconnected, reconnecting in ${retryMs / 1000} s…`, 'disconnected');
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RECONNECT_MAX_MS);
  });
}

joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const alias = aliasInput.value.trim();
  const room = roomInput.value.trim();
  if (!alias || !room) return;
  wanted = { alias, room };
  send({ type: 'join', alias, room });
});

messageForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const body = messageInput.value.trim();
  if (!body || !joined) return;
  send({ type: 'message', body });
  messageInput.value = '';
});

connect();
