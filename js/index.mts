// ES module entry: the same API as the CommonJS entry (one instance per thread, shared by both).
export {
  start,
  registerWorkerThread,
  send,
  sendToChannel,
  subscribe,
  unsubscribe,
  setToken,
  copySubscriptions,
  subscriberCount,
  clusterSubscriberCount,
  subscriptions,
  close,
  stop,
  stats,
} from './index.cjs';
export type { ClusterOptions, ClusterStats, CloseOptions, DeliveryOptions, OpenRefusal, OpenRequest, Server, StartOptions, Stats, WorkerInterface } from './index.cjs';
