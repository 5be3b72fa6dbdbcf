// A worker thread's watch of its Go poller. While Go says so (WSB_WATCH_POLLERS), the thread's
// event loop also watches the epoll fd of the poller its sockets live on: when it is readable,
// wsb_dispatch_ready reads the ready sockets pinned to this worker on this thread, and the batch
// it hands this thread (WSB_RUN_BATCH) runs at once, then the next as long as Go says so (follow). The watch also
// bounds the batches that one turn of the loop runs (watch_defer). The handles are unref'd, so
// they never keep the thread alive, and are closed when the thread leaves the pool or its
// environment ends.
#include <stdlib.h>
#include <uv.h>

#include "glue.h"

// A turn of the event loop runs batches, whichever way Go hands them, until it has run
// TURN_BATCHES or for TURN_MS; the next then waits for the end of the turn (on_resume), so that the
// thread's timers and messages (the watchdog's ping) come in between. Node's dispatch runs up to
// 1000 queued calls of a threadsafe function in a row, and Go queues a busy thread's next batch as
// the last one ends, so that, unbounded, a loaded thread would not turn for seconds.
#define TURN_BATCHES 16
#define TURN_MS 50

struct watch {
  slot_t *slot;                         // its slot
  napi_env env;                         // that thread's
  napi_async_context async;             // what the batches it runs at once run under (run_scoped)
  napi_ref resource;                    // the async context's resource
  napi_async_cleanup_hook_handle hook;  // closes the handles at teardown; NULL once removed
  uv_check_t resume;                    // runs the batch put off to the end of the turn (watch_defer)
  int resume_here;                      // that batch was Go's to run here (WSB_RUN_BATCH)
  uint64_t turn;                        // the loop time of the turn whose batches are counted
  uint64_t turn_start;                  // when its first batch began (uv_hrtime)
  int turn_batches;                     // batches run in that turn
  int polled;                           // poll was made (the thread has a poller to watch)
  int open;                             // handles not closed yet
  int active;
  int closing;
  uv_poll_t poll;                       // the poller's fd
};

static void watch_set(struct watch *w, int on);

// run_scoped runs the batch in flight as the threadsafe function would: in a callback scope, so
// that nextTicks and microtasks run after it (ran_here: Go handed it to this thread to run at
// once). It returns what Go says next, -1 if nothing ran (when the scope cannot be opened, the
// batch goes through the queue).
static int run_scoped(struct watch *w, slot_t *s, int ran_here) {
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
    next = run_batch(w->env, st, s, ran_here);
    napi_close_callback_scope(w->env, cs);
  } else {
    queue_batch(s);
  }
  napi_close_handle_scope(w->env, hs);
  return next;
}

// follow does what Go answered this thread (wsb_dispatch_ready, wsb_batch_done; -1: nothing, as no
// batch ran): run the batch it handed this thread, and the next, as long as it hands one, then
// watch its poller or not.
void follow(struct watch *w, slot_t *s, int next) {
  while (next >= 0 && (next & WSB_RUN_BATCH)) {
    if (!w || w->closing) {
      queue_batch(s);
      return;
    }
    if (watch_defer(w, 1)) return;
    next = run_scoped(w, s, 1);
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
  if (!w->polled) return;
  if (on) {
    uv_poll_start(&w->poll, UV_READABLE, on_poller_ready);
  } else {
    uv_poll_stop(&w->poll);
  }
  wsb_watching(w->slot->id, on);
}

static void on_resume(uv_check_t *h) {
  struct watch *w = h->data;
  uv_check_stop(h);
  w->turn_batches = 0;  // the turn is over: the batches run from here on count towards the next
  w->turn_start = uv_hrtime();
  follow(w, w->slot, run_scoped(w, w->slot, w->resume_here));
}

// watch_defer reports whether the batch in flight is put off to the end of this turn of the loop
// (on_resume, after the poll phase), because the turn has run its batches; ran_here: Go handed
// it to this thread to run at once.
int watch_defer(struct watch *w, int ran_here) {
  if (!w || w->closing) return 0;
  uint64_t now = uv_now(uv_handle_get_loop((uv_handle_t *)&w->resume));
  if (now != w->turn) {
    w->turn = now;
    w->turn_batches = 0;
    w->turn_start = uv_hrtime();
  }
  if (++w->turn_batches <= TURN_BATCHES && uv_hrtime() - w->turn_start < (uint64_t)TURN_MS * 1000000) return 0;
  w->resume_here = ran_here;
  uv_check_start(&w->resume, on_resume);
  return 1;
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
  if (uv_is_active((uv_handle_t *)&w->resume)) queue_batch(w->slot);  // the batch put off
  uv_close((uv_handle_t *)&w->resume, on_watch_closed);
  if (w->polled) uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

static void watch_teardown(napi_async_cleanup_hook_handle hook, void *data) {
  (void)hook;
  watch_close(data);
}

// watch_start prepares this thread's watch, inactive, with no poll handle without a poller (Go's own
// goroutines then serve its sockets); NULL when the loop cannot have one.
struct watch *watch_start(napi_env env, slot_t *s) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  struct watch *w = calloc(1, sizeof *w);
  napi_value resource, name;
  if (!w || napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "wsbroker:batch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_reference(env, resource, 1, &w->resource) != napi_ok) {
    free(w);
    return NULL;
  }
  w->slot = s;
  w->env = env;
  if (napi_async_init(env, resource, name, &w->async) != napi_ok) {
    napi_delete_reference(env, w->resource);
    free(w);
    return NULL;
  }
  int fd = wsb_poller_fd(s->id);
  if (fd >= 0 && uv_poll_init(loop, &w->poll, fd) == 0) {
    w->poll.data = w;
    uv_unref((uv_handle_t *)&w->poll);
    w->polled = 1;
  }
  uv_check_init(loop, &w->resume);
  w->resume.data = w;
  uv_unref((uv_handle_t *)&w->resume);
  w->open = w->polled + 1;
  if (napi_add_async_cleanup_hook(env, watch_teardown, w, &w->hook) != napi_ok) {
    w->hook = NULL;
    watch_close(w);  // open handles would hold up the thread's teardown
    return NULL;
  }
  return w;
}

