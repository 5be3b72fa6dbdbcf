// Package wsproto is the WebSocket protocol without I/O: the RFC 6455 frame parser and encoder,
// close-code rules, the HTTP/1.1 upgrade request parser and its responses, and permessage-deflate
// (RFC 7692). The broker feeds it the bytes it reads and writes the bytes it returns; keeping
// sockets out of it lets every function here be tested and fuzzed on its own.
package wsproto
