// The public API of WSBroker (CommonJS entry; index.mts re-exports it for ES modules). Only
// re-exports, in the order of the README's API reference (scripts/docs.mjs follows them):
//   server.cts      start, stop: listeners and the worker pool
//   delivery.cts    registerWorkerThread and the delivery of events to this thread's handlers
//   define.cts      defineWorker: handlers with a typed token
//   api.cts         send … stats: one call to the addon each
//   options.cts     the checks of every option object
//   supervisor.cts  the worker threads start() spawns
//   types.cts       the public types
export { start } from './server.cjs';
export type { StartOptions, Server, CloseOptions, ClusterOptions, WorkerInterface, OpenRequest, OpenRefusal, DeliveryOptions } from './types.cjs';
export { registerWorkerThread } from './delivery.cjs';
export { defineWorker } from './define.cjs';
export type { TypedWorkerInterface, WorkerDefinition } from './define.cjs';
export type { JsonToken } from './token.cjs';
export {
  send,
  bufferedAmount,
  sendToChannel,
  subscriberCount,
  clusterSubscriberCount,
  subscriptions,
  subscribe,
  unsubscribe,
  setToken,
  copySubscriptions,
  close,
} from './api.cjs';
export { stop } from './server.cjs';
export type { Stats, ClusterStats } from './types.cjs';
export { stats } from './api.cjs';
