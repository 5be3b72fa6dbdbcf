// What this thread is to the broker, shared by the public API (index.cts) and the entry of spawned
// workers (worker.cts), which reports it to the main thread.

/** This thread's worker id in the broker once registerWorkerThread succeeded (0 before). */
export const thread = { workerId: 0 };
