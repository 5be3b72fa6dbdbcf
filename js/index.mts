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
} from './index.cjs';
export type { WorkerInterface } from './index.cjs';
