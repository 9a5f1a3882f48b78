// The UDP receive thread in C (Linux): a thread without a JavaScript engine that reads the socket with
// recvmmsg(2), up to 32 datagrams per system call, and copies each datagram into the ring buffer shared
// with the main thread, in the layout src/sense/udp-ring.ts reads (the JavaScript receive thread,
// src/sense/udp-receiver-worker.js, writes the same). It does nothing else, so the kernel's receive
// buffer is emptied at a fraction of the CPU the JavaScript thread needs per datagram.
//
// JavaScript API (Node-API, loaded by src/sense/udp-native-receiver.ts):
//   open(address, port, ipv6, receiveBufferBytes) -> { handle, address, port, requested, granted }
//       a bound, non-blocking socket; throws an Error with `code` (e.g. EADDRINUSE) and `syscall`.
//   start(handle, ring: Uint8Array, control: Int32Array, maxQueued, onEvent) -> thread id
//       onEvent(0) when datagrams are waiting and the wake flag was clear; onEvent(1, message, code)
//       when reading the socket failed.
//   close(handle)   stops the thread, closes the socket; safe to call twice.
#define _GNU_SOURCE
#define NAPI_VERSION 6
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

// Control slots (Int32), as in udp-ring.ts.
enum { WRITE = 0, READ = 1, WRITTEN = 2, TAKEN = 3, WAKE = 4, OVERFLOW = 5 };
#define WRAP_MARK 255
#define MAX_ADDRESS 255
#define BATCH 32
#define MAX_DATAGRAM 65536

typedef struct {
  int fd;
  int stop_fd;
  int stopping;
  int thread_running;
  int closed;
  int tid;
  pthread_t thread;
  sem_t started;
  uint8_t *ring;
  int64_t ring_size;
  int32_t *ctl;
  int32_t max_queued;
  napi_env env;
  napi_threadsafe_function tsfn;
  napi_ref ring_ref;
  napi_ref ctl_ref;
  int cleanup_hook;
} reader_t;

typedef struct {
  int err;
} read_error_t;

static const char *errno_code(int err) {
  switch (err) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EPERM: return "EPERM";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, int err, const char *syscall_name) {
  char text[256];
  snprintf(text, sizeof text, "%s %s: %s", syscall_name, errno_code(err), strerror(err));
  napi_value message, error, code, sys;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_string_utf8(env, errno_code(err), NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, error, "code", code);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *text) {
  napi_throw_type_error(env, NULL, text);
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// The receive thread

static int32_t load32(int32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void store32(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

/** Copies one datagram into the ring; 0 when the ring has no room for it. */
static int put(reader_t *r, const char *address, size_t address_length, const uint8_t *msg, uint32_t length) {
  int64_t size = r->ring_size;
  int64_t need = 1 + (int64_t)address_length + 4 + (int64_t)length;
  int64_t w = load32(&r->ctl[WRITE]);
  int64_t rd = load32(&r->ctl[READ]);
  // One byte always stays free, so an equal write and read position means "empty".
  int64_t free_bytes = size - 1 - ((w - rd + size) % size);
  int64_t at = w;
  if (w + need > size) {
    if (size - w + need > free_bytes) return 0;
    r->ring[w] = WRAP_MARK;
    at = 0;
  } else if (need > free_bytes) {
    return 0;
  }
  uint8_t *p = r->ring + at;
  p[0] = (uint8_t)address_length;
  memcpy(p + 1, address, address_length);
  p += 1 + address_length;
  p[0] = (uint8_t)(length & 0xff);
  p[1] = (uint8_t)((length >> 8) & 0xff);
  p[2] = (uint8_t)((length >> 16) & 0xff);
  p[3] = (uint8_t)((length >> 24) & 0xff);
  memcpy(p + 4, msg, length);
  store32(&r->ctl[WRITE], (int32_t)((at + need) % size));
  __atomic_fetch_add(&r->ctl[WRITTEN], 1, __ATOMIC_SEQ_CST);
  return 1;
}

static void address_text(const struct sockaddr_storage *from, char *out, size_t out_size) {
  out[0] = '\0';
  if (from->ss_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)from)->sin_addr, out, (socklen_t)out_size);
  } else if (from->ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)from)->sin6_addr, out, (socklen_t)out_size);
  }
}

static void *receive_loop(void *arg) {
  reader_t *r = arg;
  r->tid = (int)syscall(SYS_gettid);
  sem_post(&r->started);

  uint8_t *buffers = malloc((size_t)BATCH * MAX_DATAGRAM);
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage from[BATCH];
  char address[INET6_ADDRSTRLEN + 1];
  int last_error = 0;
  if (buffers == NULL) {
    read_error_t *e = malloc(sizeof *e);
    if (e != NULL) {
      e->err = ENOMEM;
      napi_call_threadsafe_function(r->tsfn, e, napi_tsfn_nonblocking);
    }
    return NULL;
  }
  struct pollfd fds[2] = {{.fd = r->fd, .events = POLLIN}, {.fd = r->stop_fd, .events = POLLIN}};

  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = buffers + (size_t)i * MAX_DATAGRAM;
    iov[i].iov_len = MAX_DATAGRAM;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }

  while (!__atomic_load_n(&r->stopping, __ATOMIC_SEQ_CST)) {
    int n = recvmmsg(r->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n > 0) {
      last_error = 0;
      for (int i = 0; i < n; i++) {
        // The kernel wrote the sender's address length here; the next call needs the room back.
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        address_text(&from[i], address, sizeof address);
        size_t address_length = strlen(address);
        uint32_t length = msgs[i].msg_len;
        int32_t queued = (int32_t)((uint32_t)load32(&r->ctl[WRITTEN]) - (uint32_t)load32(&r->ctl[TAKEN]));
        if (queued >= r->max_queued || address_length >= MAX_ADDRESS ||
            !put(r, address, address_length, iov[i].iov_base, length)) {
          __atomic_fetch_add(&r->ctl[OVERFLOW], 1, __ATOMIC_SEQ_CST);
        }
      }
      int32_t expected = 0;
      if (__atomic_compare_exchange_n(&r->ctl[WAKE], &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        napi_call_threadsafe_function(r->tsfn, NULL, napi_tsfn_nonblocking);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      // Reported once per kind of error in a row; the socket stays open and is read again.
      if (errno != last_error) {
        last_error = errno;
        read_error_t *e = malloc(sizeof *e);
        if (e != NULL) {
          e->err = errno;
          napi_call_threadsafe_function(r->tsfn, e, napi_tsfn_nonblocking);
        }
      }
    }
    fds[0].revents = 0;
    fds[1].revents = 0;
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) break;
  }
  free(buffers);
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// Called on the main thread

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  read_error_t *e = data;
  if (env == NULL || js_cb == NULL) {
    free(e);
    return;
  }
  napi_value undefined, argv[3];
  napi_get_undefined(env, &undefined);
  if (e == NULL) {
    napi_create_int32(env, 0, &argv[0]);
    napi_call_function(env, undefined, js_cb, 1, argv, NULL);
    return;
  }
  char text[256];
  snprintf(text, sizeof text, "recvmmsg %s: %s", errno_code(e->err), strerror(e->err));
  napi_create_int32(env, 1, &argv[0]);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &argv[1]);
  napi_create_string_utf8(env, errno_code(e->err), NAPI_AUTO_LENGTH, &argv[2]);
  free(e);
  napi_call_function(env, undefined, js_cb, 3, argv, NULL);
}

static void stop_reader(reader_t *r) {
  if (r->closed) return;
  r->closed = 1;
  if (r->thread_running) {
    __atomic_store_n(&r->stopping, 1, __ATOMIC_SEQ_CST);
    uint64_t one = 1;
    ssize_t ignored = write(r->stop_fd, &one, sizeof one);
    (void)ignored;
    pthread_join(r->thread, NULL);
    r->thread_running = 0;
  }
  if (r->fd >= 0) close(r->fd);
  if (r->stop_fd >= 0) close(r->stop_fd);
  r->fd = -1;
  r->stop_fd = -1;
  if (r->tsfn != NULL) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
    r->tsfn = NULL;
  }
}

static void cleanup_hook(void *arg) {
  reader_t *r = arg;
  r->cleanup_hook = 0;
  stop_reader(r);
}

static void release_refs(reader_t *r) {
  if (r->ring_ref != NULL) napi_delete_reference(r->env, r->ring_ref);
  if (r->ctl_ref != NULL) napi_delete_reference(r->env, r->ctl_ref);
  r->ring_ref = NULL;
  r->ctl_ref = NULL;
}

static void finalize_reader(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  reader_t *r = data;
  if (r->cleanup_hook) napi_remove_env_cleanup_hook(r->env, cleanup_hook, r);
  stop_reader(r);
  release_refs(r);
  sem_destroy(&r->started);
  free(r);
}

/** The call's first `count` arguments into argv, the first being a receiver handle; NULL once thrown. */
static reader_t *reader_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage) {
  size_t argc = count;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < count) {
    throw_type(env, usage);
    return NULL;
  }
  void *data = NULL;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    throw_type(env, "not a receiver handle");
    return NULL;
  }
  return data;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) return throw_type(env, "open(address, port, ipv6, receiveBufferBytes)");
  char host[INET6_ADDRSTRLEN + 1];
  size_t host_length = 0;
  if (napi_get_value_string_utf8(env, argv[0], host, sizeof host, &host_length) != napi_ok) return throw_type(env, "address must be a string");
  int32_t port = 0, rcvbuf = 0;
  bool ipv6 = false;
  napi_get_value_int32(env, argv[1], &port);
  napi_get_value_bool(env, argv[2], &ipv6);
  napi_get_value_int32(env, argv[3], &rcvbuf);
  if (port < 0 || port > 65535) return throw_type(env, "port must be 0-65535");

  struct sockaddr_storage bind_address;
  memset(&bind_address, 0, sizeof bind_address);
  socklen_t bind_length;
  if (ipv6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&bind_address;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return throw_type(env, "address is not an IPv6 address");
    bind_length = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&bind_address;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return throw_type(env, "address is not an IPv4 address");
    bind_length = sizeof *a;
  }

  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (ipv6) {
    int off = 0;  // both IPv6 and IPv4-mapped senders, as Node.js's udp6 sockets
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  int requested_ok = 0;
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0) requested_ok = 1;
  if (bind(fd, (struct sockaddr *)&bind_address, bind_length) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "bind");
  }
  int granted = 0;
  socklen_t granted_length = sizeof granted;
  int granted_ok = getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &granted_length) == 0;
  struct sockaddr_storage bound;
  socklen_t bound_length = sizeof bound;
  char bound_text[INET6_ADDRSTRLEN + 1];
  int bound_port = port;
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_length) == 0) {
    address_text(&bound, bound_text, sizeof bound_text);
    bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port : ((struct sockaddr_in *)&bound)->sin_port);
  } else {
    memcpy(bound_text, host, host_length + 1);
  }
  int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "eventfd");
  }

  reader_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    close(fd);
    close(stop_fd);
    return throw_errno(env, ENOMEM, "calloc");
  }
  r->fd = fd;
  r->stop_fd = stop_fd;
  r->env = env;
  sem_init(&r->started, 0, 0);
  napi_add_env_cleanup_hook(env, cleanup_hook, r);
  r->cleanup_hook = 1;

  napi_value result, handle, v;
  napi_create_object(env, &result);
  napi_create_external(env, r, finalize_reader, NULL, &handle);
  napi_set_named_property(env, result, "handle", handle);
  napi_create_string_utf8(env, bound_text, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, result, "address", v);
  napi_create_int32(env, bound_port, &v);
  napi_set_named_property(env, result, "port", v);
  if (requested_ok) napi_create_int32(env, rcvbuf, &v); else napi_get_null(env, &v);
  napi_set_named_property(env, result, "requested", v);
  if (granted_ok) napi_create_int32(env, granted, &v); else napi_get_null(env, &v);
  napi_set_named_property(env, result, "granted", v);
  return result;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  reader_t *r = reader_args(env, info, 5, argv, "start(handle, ring, control, maxQueued, onEvent)");
  if (r == NULL) return NULL;
  if (r->closed || r->thread_running) return throw_type(env, "receiver already started or closed");

  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &buffer, &offset) != napi_ok || type != napi_uint8_array || length < 16)
    return throw_type(env, "ring must be a Uint8Array");
  r->ring = data;
  r->ring_size = (int64_t)length;
  if (napi_get_typedarray_info(env, argv[2], &type, &length, &data, &buffer, &offset) != napi_ok || type != napi_int32_array || length < 6)
    return throw_type(env, "control must be an Int32Array of 6 slots");
  r->ctl = data;
  if (napi_get_value_int32(env, argv[3], &r->max_queued) != napi_ok) return throw_type(env, "maxQueued must be a number");
  napi_valuetype fn_type;
  napi_typeof(env, argv[4], &fn_type);
  if (fn_type != napi_function) return throw_type(env, "onEvent must be a function");

  napi_create_reference(env, argv[1], 1, &r->ring_ref);
  napi_create_reference(env, argv[2], 1, &r->ctl_ref);
  napi_value name;
  napi_create_string_utf8(env, "udp-receive", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &r->tsfn) != napi_ok) {
    release_refs(r);
    return throw_type(env, "could not create the wake-up function");
  }
  // Like a worker thread that was unref'd: the receive thread does not keep the process running.
  napi_unref_threadsafe_function(env, r->tsfn);
  int err = pthread_create(&r->thread, NULL, receive_loop, r);
  if (err != 0) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
    r->tsfn = NULL;
    release_refs(r);
    return throw_errno(env, err, "pthread_create");
  }
  r->thread_running = 1;
  sem_wait(&r->started);
  napi_value tid;
  napi_create_int32(env, r->tid, &tid);
  return tid;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  reader_t *r = reader_args(env, info, 1, argv, "close(handle)");
  if (r == NULL) return NULL;
  if (r->cleanup_hook) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, r);
    r->cleanup_hook = 0;
  }
  stop_reader(r);
  release_refs(r);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(udp_reader, init)
