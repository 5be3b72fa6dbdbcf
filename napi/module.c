// The addon's module: its init and exports table, and the functions JS calls, each of which
// checks and converts its arguments and calls the Go library (libwsbroker.h), which decides.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glue.h"

// log_line logs from C; worker is the worker the line concerns, 0 for none.
static void log_line(int level, int32_t worker, const char *msg) {
  wsb_log(level, (uint8_t *)msg, strlen(msg), 0, worker, 0);
}

// log_value logs a thrown value, with its stack when it has one.
void log_value(napi_env env, napi_value exc, int32_t worker, const char *what) {
  napi_value text;
  char buf[4096];
  size_t n = 0;
  bool is_error = false;
  napi_is_error(env, exc, &is_error);
  if (is_error && napi_get_named_property(env, exc, "stack", &text) == napi_ok) exc = text;
  if (napi_coerce_to_string(env, exc, &text) != napi_ok ||
      napi_get_value_string_utf8(env, text, buf, sizeof buf, &n) != napi_ok) {
    napi_get_and_clear_last_exception(env, &exc);
    n = 0;
  }
  char line[4200];
  snprintf(line, sizeof line, "%s: %.*s", what, (int)n, buf);
  log_line(WSB_LOG_ERROR, worker, line);
}

// take_exception clears the exception a failed call left, if any.
napi_value take_exception(napi_env env) {
  bool pending = false;
  napi_value exc;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending ||
      napi_get_and_clear_last_exception(env, &exc) != napi_ok)
    return NULL;
  return exc;
}

// ---- arguments -------------------------------------------------------------------------------

#define STACK_BYTES 4096

// bytes_t is a view of a JS string (as UTF-8) or of binary data, valid during the call.
typedef struct {
  const uint8_t *data;
  size_t len;
  int is_text;
  char *heap;
  char stack[STACK_BYTES];
} bytes_t;

static void bytes_free(bytes_t *b) { free(b->heap); }

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static size_t element_size(napi_typedarray_type t) {
  switch (t) {
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      return 8;
    default:
      return 1;
  }
}

// get_bytes reads a string, ArrayBuffer or ArrayBufferView; on a wrong type it throws a TypeError
// naming `what` and returns 0.
static int get_bytes(napi_env env, napi_value v, const char *what, bytes_t *b) {
  napi_valuetype type;
  b->heap = NULL;
  b->is_text = 0;
  if (napi_typeof(env, v, &type) != napi_ok) return 0;
  if (type == napi_string) {
    // One conversion: a string of k UTF-16 units is at most 3k bytes of UTF-8, so size the buffer
    // from the length (free to read) instead of asking V8 for the exact size first.
    size_t units, n;
    if (napi_get_value_string_utf16(env, v, NULL, 0, &units) != napi_ok) return 0;
    char *dst = b->stack;
    size_t cap = 3 * units + 1;
    if (cap > sizeof b->stack) {
      dst = b->heap = malloc(cap);
      if (!dst) {
        napi_throw_error(env, NULL, "out of memory");
        return 0;
      }
    }
    if (napi_get_value_string_utf8(env, v, dst, cap, &n) != napi_ok) return 0;
    b->data = (const uint8_t *)(b->heap ? b->heap : b->stack);
    b->len = n;
    b->is_text = 1;
    return 1;
  }
  bool yes = false;
  void *data = NULL;
  size_t len = 0;
  if (type == napi_object) {
    if (napi_is_typedarray(env, v, &yes) == napi_ok && yes) {
      napi_typedarray_type t;
      if (napi_get_typedarray_info(env, v, &t, &len, &data, NULL, NULL) != napi_ok) return 0;
      len *= element_size(t);
    } else if (napi_is_dataview(env, v, &yes) == napi_ok && yes) {
      if (napi_get_dataview_info(env, v, &len, &data, NULL, NULL) != napi_ok) return 0;
    } else if (napi_is_arraybuffer(env, v, &yes) == napi_ok && yes) {
      if (napi_get_arraybuffer_info(env, v, &data, &len) != napi_ok) return 0;
    }
  }
  if (!yes) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a string, an ArrayBuffer or an ArrayBufferView", what);
    throw_type(env, msg);
    return 0;
  }
  b->data = data;  // NULL with len 0 for a detached buffer
  b->len = data ? len : 0;
  return 1;
}

// get_id reads a socket id: an integer from 1 to 2^53-1, as Number.isSafeInteger allows.
static int get_id(napi_env env, napi_value v, uint64_t *id) {
  double d;
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, v, &d) != napi_ok || !(d >= 1 && d <= 9007199254740991.0) ||
      d != floor(d)) {
    throw_type(env, "socketId must be an integer from 1 to 2^53-1");
    return 0;
  }
  *id = (uint64_t)d;
  return 1;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    char msg[64];
    snprintf(msg, sizeof msg, "expected %zu arguments, got %zu", want, argc);
    throw_type(env, msg);
    return 0;
  }
  return 1;
}

// throw_go_error throws err (a message from Go, which this frees) as an Error; NULL is no error.
static napi_value throw_go_error(napi_env env, char *err) {
  if (err) {
    napi_throw_error(env, NULL, err);
    free(err);
  }
  return NULL;
}

static napi_value make_bool(napi_env env, int v) {
  napi_value r;
  napi_get_boolean(env, v != 0, &r);
  return r;
}

// ---- exported functions ------------------------------------------------------------------------

static napi_value js_register_worker(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  bool runtime_is_bun = false;
  napi_valuetype type;
  napi_typedarray_type ptype;
  uint32_t mask;
  size_t plen = 0;
  void *progress = NULL;
  bool is_typed = false;
  env_state_t *st;
  if (!get_args(env, info, 4, argv)) return NULL;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function)
    return throw_type(env, "dispatch must be a function");
  if (napi_get_value_bool(env, argv[3], &runtime_is_bun) != napi_ok)
    return throw_type(env, "runtimeIsBun must be a boolean");
  if (napi_get_value_uint32(env, argv[1], &mask) != napi_ok)
    return throw_type(env, "handlerMask must be a number");
  if (napi_is_typedarray(env, argv[2], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[2], &ptype, &plen, &progress, NULL, NULL) != napi_ok ||
      ptype != napi_int32_array || plen < 1)
    return throw_type(env, "progress must be an Int32Array");
  if (napi_get_instance_data(env, (void **)&st) != napi_ok || !st) return NULL;

  napi_ref old = st->dispatch, old_progress = st->progress_ref;
  if (napi_create_reference(env, argv[0], 1, &st->dispatch) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &st->progress_ref) != napi_ok)
    return NULL;
  if (old) napi_delete_reference(env, old);
  if (old_progress) napi_delete_reference(env, old_progress);
  st->progress = progress;
  if (st->worker) {
    wsb_worker_set_mask(st->worker, mask);
  } else {
    slot_t *s = slot_open(env);
    if (!s) return NULL;
    st->worker = s->id;
    if (wsb_worker_register(s->id, mask, runtime_is_bun)) st->watch = watch_start(env, s);
  }
  napi_create_int32(env, st->worker, &result);
  return result;
}

// listen(config): config is the JSON that wsb_listen reads (js/options.cts builds it); returns
// the JSON it reports (the server's id, for closeServer and adopt, and its addresses).
static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  napi_valuetype type;
  bytes_t config;
  char *bound = NULL;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string)
    return throw_type(env, "config must be a string");
  if (!get_bytes(env, argv[0], "config", &config)) return NULL;
  char *err = wsb_listen((uint8_t *)config.data, config.len, &bound);
  bytes_free(&config);
  if (err) return throw_go_error(env, err);
  napi_status status = napi_create_string_utf8(env, bound, NAPI_AUTO_LENGTH, &result);
  free(bound);
  return status == napi_ok ? result : NULL;
}

// adopt(server, fd, pre): hands the socket fd (a duplicate of it) and the bytes already read
// from it over to the Attachment of server; the caller still closes fd.
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint32_t server;
  int32_t fd;
  bytes_t pre;
  if (!get_args(env, info, 3, argv)) return NULL;
  if (napi_get_value_uint32(env, argv[0], &server) != napi_ok) return throw_type(env, "server must be a number");
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok) return throw_type(env, "fd must be a number");
  if (!get_bytes(env, argv[2], "pre", &pre)) return NULL;
  char *err = wsb_adopt(server, fd, (uint8_t *)pre.data, pre.len);
  bytes_free(&pre);
  return throw_go_error(env, err);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint64_t id;
  int32_t code;
  bytes_t reason;
  char *err = NULL;
  if (!get_args(env, info, 3, argv) || !get_id(env, argv[0], &id)) return NULL;
  if (napi_get_value_int32(env, argv[1], &code) != napi_ok)
    return throw_type(env, "code must be a number");
  if (!get_bytes(env, argv[2], "reason", &reason)) return NULL;
  int closed = wsb_close(id, code, (uint8_t *)reason.data, reason.len, &err);
  bytes_free(&reason);
  if (err) {
    throw_type(env, err);
    free(err);
    return NULL;
  }
  return make_bool(env, closed);
}

// The asynchronous calls (stop, closeServer, clusterJoin, clusterSubscriberCount) take a callback, which Go
// calls once, with a number, through notify.

// async_done runs on the JS thread that made the call: it calls the callback with the result.
static void async_done(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  double *result = data;
  napi_value undef, arg;
  if (env != NULL && napi_get_undefined(env, &undef) == napi_ok &&
      napi_create_double(env, result ? *result : 0, &arg) == napi_ok &&
      napi_call_function(env, undef, callback, 1, &arg, NULL) == napi_pending_exception) {
    napi_value exc = take_exception(env);
    if (exc) log_value(env, exc, 0, "callback failed");
  }
  free(result);
}

// notify is called by Go, on its own thread, when an asynchronous call ends with result.
static void notify(void *ctx, double result) {
  napi_threadsafe_function done = ctx;
  double *data = malloc(sizeof *data);
  if (data) *data = result;
  napi_call_threadsafe_function(done, data, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
}

// async_callback makes the threadsafe function through which Go calls callback, argument i of
// the call; NULL (an exception thrown) if it is not a function.
static napi_threadsafe_function async_callback(napi_env env, napi_value *argv, size_t i, const char *what) {
  napi_valuetype type;
  napi_value name;
  napi_threadsafe_function done;
  if (napi_typeof(env, argv[i], &type) != napi_ok || type != napi_function) {
    throw_type(env, "callback must be a function");
    return NULL;
  }
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[i], NULL, name, 0, 1, NULL, NULL, NULL, async_done,
                                      &done) != napi_ok) {
    napi_throw_error(env, NULL, "cannot create the callback");
    return NULL;
  }
  return done;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  napi_threadsafe_function done = async_callback(env, argv, 0, "wsbroker stop");
  if (done) wsb_stop(done);
  return NULL;
}

// closeServer(id, graceMs, callback): closes the listeners and connections of one start() call;
// callback() once their handleClose handlers have run.
static napi_value js_close_server(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint32_t id;
  double grace;
  if (!get_args(env, info, 3, argv)) return NULL;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok || napi_get_value_double(env, argv[1], &grace) != napi_ok)
    return throw_type(env, "server and graceMs must be numbers");
  napi_threadsafe_function done = async_callback(env, argv, 2, "wsbroker closeServer");
  if (done) wsb_server_close(id, grace, done);
  return NULL;
}

// clusterJoin(config, callback): joins the cluster config (JSON) describes; callback(1) once the
// engine is connected, callback(0) if it is not within the time Go allows (it keeps trying).
static napi_value js_cluster_join(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  napi_valuetype type;
  bytes_t config;
  if (!get_args(env, info, 2, argv)) return NULL;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string)
    return throw_type(env, "config must be a string");
  napi_threadsafe_function done = async_callback(env, argv, 1, "wsbroker clusterJoin");
  if (!done) return NULL;
  if (!get_bytes(env, argv[0], "config", &config)) {
    napi_release_threadsafe_function(done, napi_tsfn_abort);
    return NULL;
  }
  char *err = wsb_cluster_join((uint8_t *)config.data, config.len, done);
  bytes_free(&config);
  if (err) napi_release_threadsafe_function(done, napi_tsfn_abort);
  return throw_go_error(env, err);
}

// clusterSubscriberCount(channelName, callback): callback(count) with the count of every node.
static napi_value js_cluster_subscriber_count(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bytes_t ch;
  if (!get_args(env, info, 2, argv)) return NULL;
  napi_threadsafe_function done = async_callback(env, argv, 1, "wsbroker clusterSubscriberCount");
  if (!done) return NULL;
  if (!get_bytes(env, argv[0], "channelName", &ch)) {
    napi_release_threadsafe_function(done, napi_tsfn_abort);
    return NULL;
  }
  wsb_cluster_subscriber_count((uint8_t *)ch.data, ch.len, done);
  bytes_free(&ch);
  return NULL;
}

// js_unregister_worker ends this thread's part in the pool: its pending events go to the other
// workers, and its threadsafe function no longer keeps the thread alive.
static napi_value js_unregister_worker(napi_env env, napi_callback_info info) {
  (void)info;
  env_state_t *st;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok || !st || !st->worker) return NULL;
  slot_t *s = slot_get(st->worker);
  st->worker = 0;
  watch_close(st->watch);
  st->watch = NULL;
  if (s) slot_close(s);
  return NULL;
}

static napi_value js_caught_up(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint64_t id;
  if (!get_args(env, info, 1, argv) || !get_id(env, argv[0], &id)) return NULL;
  wsb_caught_up(id);
  return NULL;
}

// The JS value of a parcel's data, made during wsb_take_parcel's call.
typedef struct {
  napi_env env;
  napi_value out;
} parcel_value_t;

static uint8_t *make_parcel_value(void *ctx, const uint8_t *text, size_t len) {
  parcel_value_t *v = ctx;
  if (text) {
    napi_status status = napi_create_string_utf8(v->env, (const char *)text, len, &v->out);
    return status == napi_ok ? (uint8_t *)text : NULL;
  }
  void *data = NULL;
  return napi_create_buffer(v->env, len, &data, &v->out) == napi_ok ? data : NULL;
}

// takeParcel(id, text): the data of a message held outside its batch (js/batch.cts), taken once, as
// a string or a Buffer copied from the buffers Go reassembled it in. A Buffer over memory of its own
// (an external buffer) would save the copy, but made V8's collections pause for longer than it
// costs (BENCHMARKS.md).
static napi_value js_take_parcel(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double id;
  bool text;
  if (!get_args(env, info, 2, argv)) return NULL;
  if (napi_get_value_double(env, argv[0], &id) != napi_ok || napi_get_value_bool(env, argv[1], &text) != napi_ok)
    return throw_type(env, "takeParcel(id: number, text: boolean)");
  parcel_value_t v = {env, NULL};
  int made = wsb_take_parcel(id, text, make_parcel_value, &v);
  if (made < 0) {
    napi_throw_range_error(env, NULL, "wsbroker: no such parcel (taken already, or never made)");
    return NULL;
  }
  if (made > 0) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, NULL, "wsbroker: cannot make the message of a parcel");
    return NULL;
  }
  return v.out;
}

static napi_value js_accept_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint64_t id;
  bool accept;
  if (!get_args(env, info, 2, argv) || !get_id(env, argv[0], &id)) return NULL;
  if (napi_get_value_bool(env, argv[1], &accept) != napi_ok)
    return throw_type(env, "accept must be a boolean");
  wsb_accept_open(id, accept, dispatching);
  return NULL;
}

// refuseOpen(socketId, refusal, body): refusal is the JSON of the status and headers.
static napi_value js_refuse_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint64_t id;
  bytes_t refusal, body;
  if (!get_args(env, info, 3, argv) || !get_id(env, argv[0], &id) ||
      !get_bytes(env, argv[1], "refusal", &refusal))
    return NULL;
  if (!get_bytes(env, argv[2], "body", &body)) {
    bytes_free(&refusal);
    return NULL;
  }
  wsb_refuse_open(id, (uint8_t *)refusal.data, refusal.len, (uint8_t *)body.data, body.len,
                  dispatching);
  bytes_free(&refusal);
  bytes_free(&body);
  return NULL;
}

// send(socketId, data): false when the socket's queue is over its backpressureThreshold.
static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint64_t id;
  bytes_t data;
  if (!get_args(env, info, 2, argv) || !get_id(env, argv[0], &id) ||
      !get_bytes(env, argv[1], "data", &data))
    return NULL;
  int room = wsb_send(id, data.is_text, (uint8_t *)data.data, data.len, dispatching);
  bytes_free(&data);
  return make_bool(env, room);
}

static napi_value js_buffered_amount(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  uint64_t id;
  if (!get_args(env, info, 1, argv) || !get_id(env, argv[0], &id)) return NULL;
  napi_create_int64(env, wsb_buffered_amount(id), &result);
  return result;
}

// sendToChannel(channel, data, exceptSocketId?)
static napi_value js_send_to_channel(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  napi_valuetype type = napi_undefined;
  uint64_t except = 0;
  bytes_t ch, data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) return throw_type(env, "expected 2 or 3 arguments");
  if (argc > 2 && napi_typeof(env, argv[2], &type) != napi_ok) return NULL;
  if (type != napi_undefined && !get_id(env, argv[2], &except)) return NULL;
  if (!get_bytes(env, argv[0], "channelName", &ch)) return NULL;
  if (!get_bytes(env, argv[1], "data", &data)) {
    bytes_free(&ch);
    return NULL;
  }
  wsb_send_to_channel((uint8_t *)ch.data, ch.len, data.is_text, (uint8_t *)data.data, data.len,
                      except, dispatching);
  bytes_free(&ch);
  bytes_free(&data);
  return NULL;
}

static napi_value js_subscriber_count(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  bytes_t ch;
  if (!get_args(env, info, 1, argv) || !get_bytes(env, argv[0], "channelName", &ch)) return NULL;
  int64_t count = wsb_subscriber_count((uint8_t *)ch.data, ch.len);
  bytes_free(&ch);
  napi_create_int64(env, count, &result);
  return result;
}

// subscriptions(socketId): an array of Buffers, one per channel.
static napi_value js_subscriptions(napi_env env, napi_callback_info info) {
  napi_value argv[1], result, buf;
  uint64_t id;
  size_t n = 0;
  if (!get_args(env, info, 1, argv) || !get_id(env, argv[0], &id)) return NULL;
  uint8_t *packed = wsb_subscriptions(id, &n);
  if (napi_create_array(env, &result) != napi_ok) {
    free(packed);
    return NULL;
  }
  uint32_t i = 0;
  for (size_t p = 0; p + 4 <= n; i++) {
    uint32_t len;
    memcpy(&len, packed + p, 4);  // little-endian, as on every platform this builds for
    p += 4;
    if (len > n - p || napi_create_buffer_copy(env, len, packed + p, NULL, &buf) != napi_ok ||
        napi_set_element(env, result, i, buf) != napi_ok)
      break;
    p += len;
  }
  free(packed);
  return result;
}

// js_membership implements subscribe and unsubscribe.
static napi_value js_membership(napi_env env, napi_callback_info info, int subscribe) {
  napi_value argv[2];
  uint64_t id;
  bytes_t ch;
  if (!get_args(env, info, 2, argv) || !get_id(env, argv[0], &id) ||
      !get_bytes(env, argv[1], "channelName", &ch))
    return NULL;
  int changed = subscribe ? wsb_subscribe(id, (uint8_t *)ch.data, ch.len)
                          : wsb_unsubscribe(id, (uint8_t *)ch.data, ch.len);
  bytes_free(&ch);
  return make_bool(env, changed);
}

static napi_value js_subscribe(napi_env env, napi_callback_info info) {
  return js_membership(env, info, 1);
}

static napi_value js_unsubscribe(napi_env env, napi_callback_info info) {
  return js_membership(env, info, 0);
}

static napi_value js_set_token(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint64_t id;
  bytes_t tok;
  if (!get_args(env, info, 2, argv) || !get_id(env, argv[0], &id) ||
      !get_bytes(env, argv[1], "token", &tok))
    return NULL;
  wsb_set_token(id, (uint8_t *)tok.data, tok.len);
  bytes_free(&tok);
  return NULL;
}

static napi_value js_copy_subscriptions(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bytes_t from, to;
  if (!get_args(env, info, 2, argv) || !get_bytes(env, argv[0], "fromChannelName", &from))
    return NULL;
  if (!get_bytes(env, argv[1], "toChannelName", &to)) {
    bytes_free(&from);
    return NULL;
  }
  wsb_copy_subscriptions((uint8_t *)from.data, from.len, (uint8_t *)to.data, to.len);
  bytes_free(&from);
  bytes_free(&to);
  return NULL;
}

// js_log(level, message, socketId, worker, threadId): the ids are 0 where none applies.
static napi_value js_log(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t level, worker, thread;
  int64_t socket;
  napi_valuetype type;
  bytes_t msg;
  if (!get_args(env, info, 5, argv)) return NULL;
  if (napi_get_value_int32(env, argv[0], &level) != napi_ok)
    return throw_type(env, "level must be a number");
  if (napi_get_value_int64(env, argv[2], &socket) != napi_ok || socket < 0 ||
      napi_get_value_int32(env, argv[3], &worker) != napi_ok ||
      napi_get_value_int32(env, argv[4], &thread) != napi_ok)
    return throw_type(env, "socketId, worker and threadId must be numbers");
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_string)
    return throw_type(env, "message must be a string");
  if (!get_bytes(env, argv[1], "message", &msg)) return NULL;
  wsb_log(level, (uint8_t *)msg.data, msg.len, (uint64_t)socket, worker, thread);
  bytes_free(&msg);
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  char *json = wsb_stats();
  napi_status status = napi_create_string_utf8(env, json ? json : "{}", NAPI_AUTO_LENGTH, &result);
  free(json);
  return status == napi_ok ? result : NULL;
}

static void free_env_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

NAPI_MODULE_INIT() {
  env_state_t *st = calloc(1, sizeof *st);
  if (!st || napi_set_instance_data(env, st, free_env_state, NULL) != napi_ok) {
    free(st);
    napi_throw_error(env, NULL, "wsbroker: cannot initialise the addon");
    return NULL;
  }
  batch_bytes = wsb_init(deliver, notify);
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"registerWorker", js_register_worker},
      {"unregisterWorker", js_unregister_worker},
      {"listen", js_listen},
      {"adopt", js_adopt},
      {"close", js_close},
      {"stop", js_stop},
      {"closeServer", js_close_server},
      {"clusterJoin", js_cluster_join},
      {"clusterSubscriberCount", js_cluster_subscriber_count},
      {"acceptOpen", js_accept_open},
      {"refuseOpen", js_refuse_open},
      {"caughtUp", js_caught_up},
      {"takeParcel", js_take_parcel},
      {"send", js_send},
      {"bufferedAmount", js_buffered_amount},
      {"sendToChannel", js_send_to_channel},
      {"subscriberCount", js_subscriber_count},
      {"subscriptions", js_subscriptions},
      {"subscribe", js_subscribe},
      {"unsubscribe", js_unsubscribe},
      {"setToken", js_set_token},
      {"copySubscriptions", js_copy_subscriptions},
      {"stats", js_stats},
      {"log", js_log},
  };
  enum { COUNT = sizeof fns / sizeof fns[0] };
  napi_property_descriptor props[COUNT];
  for (size_t i = 0; i < COUNT; i++) {
    props[i] = (napi_property_descriptor){fns[i].name, NULL, fns[i].fn, NULL,
                                          NULL, NULL, napi_enumerable, NULL};
  }
  if (napi_define_properties(env, exports, COUNT, props) != napi_ok) return NULL;
  return exports;
}
