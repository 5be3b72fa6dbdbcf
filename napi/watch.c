// A worker thread's watch of the Go pollers. While Go says so (WSB_WATCH_POLLERS), the thread's
// event loop also watches the pollers' epoll fds: when one is readable, wsb_dispatch_ready reads
// the ready sockets pinned to this worker on this thread, and the batch it hands this thread
// (WSB_RUN_BATCH) runs at once, then the next as long as Go says so (follow). The handles are
// unref'd, so they never keep the thread alive, and are closed when the thread leaves the pool or
// its environment ends.
#include <stdlib.h>
#include <uv.h>

#include "glue.h"

struct watch {
  slot_t *slot;                         // its slot
  napi_env env;                         // that thread's
  napi_async_context async;             // what the batches it runs at once run under (run_here)
  napi_ref resource;                    // the async context's resource
  napi_async_cleanup_hook_handle hook;  // closes the handles at teardown; NULL once removed
  int n;                                // handles made, all in use
  int open;                             // handles not closed yet
  int active;
  int closing;
  uv_poll_t polls[];                    // one per poller
};

static void watch_set(struct watch *w, int on);

// run_here runs the batch that Go handed this thread itself, as the threadsafe function would: in
// a callback scope, so that nextTicks and microtasks run after it. It returns what Go says next,
// -1 if nothing ran (when the scope cannot be opened, the batch goes through the queue).
static int run_here(struct watch *w, slot_t *s) {
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value resource;
  int next = -1;
  if (napi_open_handle_scope(w->env, &hs) != napi_ok) {
    queue_batch(s);
    return -1;
  }
  if (napi_get_reference_value(w->env, w->resource, &resource) == napi_ok &&
      napi_open_callback_scope(w->env, resource, w->async, &cs) == napi_ok) {
    env_state_t *st = NULL;
    napi_get_instance_data(w->env, (void **)&st);
    next = run_batch(w->env, st, s, 1);
    napi_close_callback_scope(w->env, cs);
  } else {
    queue_batch(s);
  }
  napi_close_handle_scope(w->env, hs);
  return next;
}

// follow does what Go answered this thread (wsb_dispatch_ready, wsb_batch_done; -1: nothing, as no
// batch ran): run the batch it handed this thread, and the next, as long as it hands one, then
// watch the pollers or not.
void follow(struct watch *w, slot_t *s, int next) {
  while (next >= 0 && (next & WSB_RUN_BATCH)) {
    if (!w || w->closing) {
      queue_batch(s);
      return;
    }
    next = run_here(w, s);
  }
  if (next >= 0) watch_set(w, next & WSB_WATCH_POLLERS);
}

static void on_poller_ready(uv_poll_t *h, int status, int events) {
  (void)events;
  if (status != 0) {
    uv_poll_stop(h);  // the fd failed (never expected: the pollers' fds stay open); Go serves it alone
    return;
  }
  struct watch *w = h->data;
  follow(w, w->slot, wsb_dispatch_ready(w->slot->id));
}

static void watch_set(struct watch *w, int on) {
  if (!w || w->closing || w->active == on) return;
  w->active = on;
  for (int i = 0; i < w->n; i++) {
    if (on) {
      uv_poll_start(&w->polls[i], UV_READABLE, on_poller_ready);
    } else {
      uv_poll_stop(&w->polls[i]);
    }
  }
}

static void on_watch_closed(uv_handle_t *h) {
  struct watch *w = h->data;
  if (--w->open > 0) return;
  if (w->hook) napi_remove_async_cleanup_hook(w->hook);
  free(w);
}

static void drop_async(struct watch *w) {
  napi_async_destroy(w->env, w->async);
  napi_delete_reference(w->env, w->resource);
}

void watch_close(struct watch *w) {
  if (!w || w->closing) return;
  w->closing = 1;
  drop_async(w);
  for (int i = 0; i < w->n; i++) uv_close((uv_handle_t *)&w->polls[i], on_watch_closed);
}

static void watch_teardown(napi_async_cleanup_hook_handle hook, void *data) {
  (void)hook;
  watch_close(data);
}

// watch_start prepares this thread's watch, inactive; NULL without pollers (Go's own goroutines
// then serve every socket) or when the loop cannot watch them.
struct watch *watch_start(napi_env env, slot_t *s) {
  uv_loop_t *loop;
  int n = wsb_poller_fds(NULL, 0);
  if (n <= 0 || napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  struct watch *w = calloc(1, sizeof *w + n * sizeof w->polls[0]);
  int *fds = malloc(n * sizeof *fds);
  napi_value resource, name;
  if (!w || !fds || napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "wsbroker:batch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_reference(env, resource, 1, &w->resource) != napi_ok) {
    free(fds);
    free(w);
    return NULL;
  }
  w->slot = s;
  w->env = env;
  if (napi_async_init(env, resource, name, &w->async) != napi_ok) {
    napi_delete_reference(env, w->resource);
    free(fds);
    free(w);
    return NULL;
  }
  int got = wsb_poller_fds(fds, n);
  for (int i = 0; i < n && i < got; i++) {
    uv_poll_t *h = &w->polls[w->n];
    if (uv_poll_init(loop, h, fds[i]) != 0) continue;
    h->data = w;
    uv_unref((uv_handle_t *)h);
    w->n++;
  }
  free(fds);
  w->open = w->n;
  if (w->n == 0) {
    drop_async(w);
    free(w);
    return NULL;
  }
  if (napi_add_async_cleanup_hook(env, watch_teardown, w, &w->hook) != napi_ok) {
    w->hook = NULL;
    watch_close(w);  // open handles would hold up the thread's teardown
    return NULL;
  }
  return w;
}

