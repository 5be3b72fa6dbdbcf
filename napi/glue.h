// The N-API glue's shared declarations. The glue converts values between JS and the Go library
// and executes what Go decides: module.c (module init, the exports table, argument checks and
// conversion), deliver.c (the threadsafe function and batch memory of each JS worker thread),
// watch.c (a worker thread's watch of the Go pollers). What the glue does and when is decided in
// Go (cmd/libwsbroker/schedule.go).
#ifndef WSBROKER_GLUE_H
#define WSBROKER_GLUE_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>

#include "libwsbroker.h"
#include "protocol.gen.h"

// A worker thread's link to Go. Slots are never freed: a late delivery from Go must still find
// one to be told the thread is gone.
typedef struct {
  pthread_mutex_t mu;  // guards alive, tsfn calls, mem and inflight against the finalizer
  int alive;
  int32_t id;
  napi_threadsafe_function tsfn;
  // The thread's batch memory, reused for every batch: Go hands over at most one batch at a time
  // and copies it here, and JS reads it through an ArrayBuffer over this memory (env_state_t.view)
  // only while dispatching. Reusing it spares a malloc, a page-faulting first touch and a copy
  // into a new Buffer per batch.
  uint8_t *mem;
  size_t cap;
  int inflight;  // a batch is in mem, handed to the thread and not yet taken by run_batch
  size_t inflight_len;
  int64_t handled;  // bytes of the batch in flight that JS handled before the thread was
                    // terminated; -1 while nothing is cut short
} slot_t;

// Per-env (main thread or Worker) state.
typedef struct {
  int32_t worker;  // 0 until registerWorker
  napi_ref dispatch;
  napi_ref progress_ref;  // keeps the array behind progress alive
  int32_t *progress;      // where the event being handled ends in the batch (js/batch.cts)
  napi_ref view;          // an external ArrayBuffer over the slot's mem
  uint8_t *view_mem;      // the memory and size view covers
  size_t view_cap;
  struct watch *watch;  // this thread's watch on the Go pollers, while it is in the pool
} env_state_t;

struct watch;

// The worker whose batch this thread is handling (0: none), passed to Go with the thread's sends:
// Go writes them together when the batch is done.
extern __thread int32_t dispatching;

// deliver.c
extern size_t batch_bytes;  // Go's usual batch size (wsb_init): what batch memory shrinks back to
slot_t *slot_open(napi_env env);
slot_t *slot_get(int32_t id);
void slot_close(slot_t *s);
int deliver(int32_t id, const uint8_t *batch, size_t len, int to_caller);
int run_batch(napi_env env, env_state_t *st, slot_t *s, int ran_here);
void queue_batch(slot_t *s);

// watch.c
struct watch *watch_start(napi_env env, slot_t *s);
void watch_close(struct watch *w);
void follow(struct watch *w, slot_t *s, int next);
int watch_defer(struct watch *w, int ran_here);

// module.c
void log_value(napi_env env, napi_value exc, int32_t worker, const char *what);
napi_value take_exception(napi_env env);

#endif
