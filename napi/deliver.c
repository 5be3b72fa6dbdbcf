// Each JS worker thread's link to Go: its slot (worker id, threadsafe function, batch memory),
// Go's deliveries into that memory, and the run of a batch on the thread.
#include <stdlib.h>
#include <string.h>

#include "glue.h"

__thread int32_t dispatching;

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;

static slot_t **table;  // indexed by worker id
static size_t table_len;
static int32_t last_id;

slot_t *slot_get(int32_t id) {
  slot_t *s = NULL;
  pthread_mutex_lock(&table_mu);
  if (id > 0 && (size_t)id < table_len) s = table[id];
  pthread_mutex_unlock(&table_mu);
  return s;
}

// slot_add gives s the next worker id; returns 0 when out of memory.
static int32_t slot_add(slot_t *s) {
  int32_t id = 0;
  pthread_mutex_lock(&table_mu);
  if ((size_t)last_id + 1 >= table_len) {
    size_t len = table_len ? table_len * 2 : 64;
    slot_t **grown = realloc(table, len * sizeof *grown);
    if (grown) {
      memset(grown + table_len, 0, (len - table_len) * sizeof *grown);
      table = grown;
      table_len = len;
    }
  }
  if ((size_t)last_id + 1 < table_len) {
    id = ++last_id;
    table[id] = s;
    s->id = id;
  }
  pthread_mutex_unlock(&table_mu);
  return id;
}

// Batch memory: grown to the largest batch, at least MEM_MIN so that small batches do not
// reallocate it one by one, and given back down to batch_bytes (Go's usual batch size, from
// wsb_init) after a batch that needed more than MEM_SHRINK_FACTOR times that (a rare huge message
// should not pin its size for good).
#define MEM_MIN (64 << 10)
#define MEM_SHRINK_FACTOR 4
size_t batch_bytes;

// ensure_mem makes s->mem hold len bytes (s->mu held); 0 when out of memory.
static int ensure_mem(slot_t *s, size_t len) {
  size_t want = s->cap;
  if (want < len) {
    want = len < MEM_MIN ? MEM_MIN : len;
  } else if (want > MEM_SHRINK_FACTOR * batch_bytes && len <= batch_bytes) {
    want = batch_bytes;
  }
  if (want == s->cap) return 1;
  uint8_t *mem = malloc(want);  // the old contents are not needed: each batch replaces them
  if (!mem) return 0;
  free(s->mem);  // JS's view of it is replaced before its next read (call_js)
  s->mem = mem;
  s->cap = want;
  return 1;
}

// deliver is called by Go from any thread with a batch, which it copies into the worker's batch
// memory and, unless to_caller (the calling thread runs it, told by WSB_RUN_BATCH), queues on the
// worker's thread: 0 when done (wsb_deliver_fn).
int deliver(int32_t id, const uint8_t *batch, size_t len, int to_caller) {
  slot_t *s = slot_get(id);
  if (!s) return -1;
  int rc = -1;
  pthread_mutex_lock(&s->mu);
  if (s->alive && ensure_mem(s, len)) {
    memcpy(s->mem, batch, len);
    s->inflight = 1;
    s->inflight_len = len;
    if (to_caller || napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking) == napi_ok) {
      rc = 0;
    } else {
      s->inflight = 0;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

// queue_batch queues the batch in s's memory on the worker's thread, when Go handed it to this
// thread to run but this thread cannot (its watch is closing); if the threadsafe function is
// closing, the batch stays in flight for its finalizer.
void queue_batch(slot_t *s) {
  pthread_mutex_lock(&s->mu);
  if (s->inflight) napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
  pthread_mutex_unlock(&s->mu);
}

// js_can_run reports whether this thread still runs JavaScript: not while it is being terminated.
static int js_can_run(napi_env env) {
  napi_value global, object, result;
  if (napi_get_global(env, &global) != napi_ok ||
      napi_get_named_property(env, global, "Object", &object) != napi_ok ||
      napi_call_function(env, global, object, 0, NULL, &result) != napi_ok) {
    take_exception(env);
    return 0;
  }
  return 1;
}

// batch_view returns this thread's ArrayBuffer over s->mem, made anew when mem moved (the old
// one is detached, so no JS can read freed memory through it).
static napi_status batch_view(napi_env env, env_state_t *st, slot_t *s, napi_value *ab) {
  napi_status status;
  if (st->view && st->view_mem == s->mem && st->view_cap == s->cap) return napi_get_reference_value(env, st->view, ab);
  if (st->view) {
    napi_value old;
    if ((status = napi_get_reference_value(env, st->view, &old)) != napi_ok ||
        (status = napi_detach_arraybuffer(env, old)) != napi_ok ||
        (status = napi_delete_reference(env, st->view)) != napi_ok)
      return status;
    st->view = NULL;
  }
  if ((status = napi_create_external_arraybuffer(env, s->mem, s->cap, NULL, NULL, ab)) != napi_ok ||
      (status = napi_create_reference(env, *ab, 1, &st->view)) != napi_ok)
    return status;
  st->view_mem = s->mem;
  st->view_cap = s->cap;
  return napi_ok;
}

// run_batch hands the batch in s's memory to this thread's dispatch function (st: the thread's
// state, NULL if it has none), then tells Go (ran_here: this thread ran it at once, as Go said). It returns what Go says next, -1 if nothing
// ran (the finalizer took the batch, or the thread is being terminated).
int run_batch(napi_env env, env_state_t *st, slot_t *s, int ran_here) {
  pthread_mutex_lock(&s->mu);
  if (!s->inflight) {  // taken by the finalizer
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
  size_t len = s->inflight_len;
  s->inflight = 0;
  pthread_mutex_unlock(&s->mu);

  napi_value args[2], fn, undef;
  int called = 0;
  napi_status status = st ? napi_ok : napi_generic_failure;
  if (status == napi_ok) status = batch_view(env, st, s, &args[0]);
  if (status == napi_ok) status = napi_create_uint32(env, (uint32_t)len, &args[1]);
  if (status == napi_ok) status = napi_get_reference_value(env, st->dispatch, &fn);
  if (status == napi_ok) status = napi_get_undefined(env, &undef);
  if (status == napi_ok) {
    *st->progress = 0;
    called = 1;
    dispatching = s->id;
    status = napi_call_function(env, undef, fn, 2, args, NULL);
    dispatching = 0;
  }
  if (status != napi_ok) {
    napi_value exc = take_exception(env);
    if (!js_can_run(env)) {
      // The thread is being terminated (process.exit in a handler, or the watchdog ending a
      // handler that never returns). The events up to the one being handled count as delivered;
      // take no more: the finalizer hands the rest, and what waits, to the other workers.
      pthread_mutex_lock(&s->mu);
      s->alive = 0;
      s->handled = called ? *st->progress : 0;
      pthread_mutex_unlock(&s->mu);
      return -1;
    }
    if (exc) log_value(env, exc, s->id, "event dispatch failed");
  }
  return wsb_batch_done(s->id, ran_here);
}

// call_js is the threadsafe function's callback, on the worker's JS thread: it runs the batch
// queued for it, unless the watch puts it off to the end of the loop's turn, and does what Go says
// next.
static void call_js(napi_env env, napi_value unused, void *context, void *data) {
  (void)unused;
  (void)data;
  if (env == NULL) return;  // the finalizer has already dealt with the batch
  env_state_t *st = NULL;
  napi_get_instance_data(env, (void **)&st);
  struct watch *w = st ? st->watch : NULL;
  if (watch_defer(w, 0)) return;
  follow(w, context, run_batch(env, st, context, 0));
}

// finalize_tsfn runs once the thread's threadsafe function has ended (the thread left the pool, or
// is ending): it tells Go how much of the batch in flight, if any, the thread handled.
static void finalize_tsfn(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  slot_t *s = data;
  pthread_mutex_lock(&s->mu);
  s->alive = 0;
  int64_t handled = s->inflight ? 0 : s->handled;
  s->inflight = 0;
  free(s->mem);  // no delivery comes after alive = 0, and this thread's JS has ended
  s->mem = NULL;
  s->cap = 0;
  pthread_mutex_unlock(&s->mu);
  wsb_worker_gone(s->id, handled);
}

// slot_open gives this thread a slot: a worker id and a threadsafe function through which Go hands
// it batches. NULL, with an exception thrown, when it cannot.
slot_t *slot_open(napi_env env) {
  napi_value name;
  slot_t *s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->handled = -1;
  if (!slot_add(s)) {
    free(s);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_create_string_utf8(env, "wsbroker events", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, s, finalize_tsfn, s, call_js,
                                      &s->tsfn) != napi_ok) {
    napi_throw_error(env, NULL, "cannot create the worker's event channel");
    return NULL;
  }
  s->alive = 1;
  return s;
}

// slot_close takes no more deliveries for s and lets its threadsafe function go, so that it no
// longer keeps the thread alive; its finalizer tells Go.
void slot_close(slot_t *s) {
  pthread_mutex_lock(&s->mu);
  int alive = s->alive;
  s->alive = 0;
  pthread_mutex_unlock(&s->mu);
  if (alive) napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
}
