// The handlers of the WSBroker benchmark server: the protocol of bench/README.md.
import { send, sendToChannel, setToken, stats, subscribe } from '@wsbroker/wsbroker';

export function handleOpen(socketId, ip, headers) {
  const token = headers['x-bench-token'];
  if (token !== undefined) setToken(socketId, token);
  return true;
}

// A binary message is sent back as it is.
export function handleBinaryMessage(data, socketId) {
  send(socketId, data);
}

export function handleTextMessage(text, socketId) {
  if (text.charCodeAt(1) !== 58 /* : */) return;
  switch (text.charCodeAt(0)) {
    case 101: // e:<payload>
      send(socketId, text.slice(2));
      break;
    case 115: // s:<channel>
      subscribe(socketId, text.slice(2));
      send(socketId, 'ok');
      break;
    case 112: { // p:<channel>:<payload>
      const i = text.indexOf(':', 2);
      if (i >= 0) sendToChannel(text.slice(2, i), text.slice(i + 1));
      break;
    }
    case 114: { // r:<channel>:<payload>
      const i = text.indexOf(':', 2);
      if (i >= 0) {
        const payload = text.slice(i + 1);
        send(socketId, payload);
        sendToChannel(text.slice(2, i), payload);
      }
      break;
    }
    case 105: // i: the sender's socket id
      send(socketId, String(socketId));
      break;
    case 100: { // d:<socket id>:<payload>, to a socket of any node
      const i = text.indexOf(':', 2);
      if (i >= 0) send(Number(text.slice(2, i)), text.slice(i + 1));
      break;
    }
    case 109: { // m: this worker's V8 heap (the main thread's only ran start()) and Go's memory, in bytes
      const m = process.memoryUsage();
      const go = stats().go;
      send(socketId, JSON.stringify({ jsHeap: m.heapTotal, jsExternal: m.external, goHeap: go.heapBytes,
        goStacks: go.stackBytes, goMapped: go.mappedBytes, goroutines: go.goroutines }));
      break;
    }
  }
}
