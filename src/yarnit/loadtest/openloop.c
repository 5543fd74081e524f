/*
 * openloop: a precise open-loop HTTP/1.1 load generator (one thread, epoll).
 *
 * Usage: openloop HOST PORT PATH RATE DURATION_S BODIES_FILE CONNECTIONS
 *
 * Same contract as benchmarks/serving_loadgen.py (the asyncio one), with
 * tens-of-microseconds precision instead of ~1 ms of generator noise.
 * Prints exactly one JSON object on stdout:
 *   {"offered_rps": R, "achieved_rps": A, "errors": E, "sent": N,
 *    "late_sends": L, "max_send_lag_ms": M,
 *    "by_status": {"200": {"count": c, "p50_ms": x, "p99_ms": y,
 *                          "p999_ms": z, "max_ms": w, "p95_ms": q, ...}, ...}}
 *
 * Model
 *  - Request i (0 <= i < N = floor(RATE * DURATION_S)) is scheduled at
 *    t0 + i / RATE on CLOCK_MONOTONIC.  Its latency runs from that *scheduled*
 *    time to the moment the last byte of its response has been read, so time
 *    spent waiting for a free connection counts (no coordinated omission).
 *  - Each connection carries at most one outstanding request (no pipelining).
 *    Due requests wait in a FIFO (which is simply the index range
 *    [queue_head, next_due) since they become due in order) and take any idle
 *    connection.  A request sent more than 1 ms after its scheduled time is a
 *    "late send" (generator or connection starvation); max_send_lag_ms is the
 *    largest send lag seen.
 *  - Every request ends exactly once, either answered (counted under its status
 *    code) or as an error, so  sum(by_status[*].count) + errors == sent.
 *    "sent" is the number of scheduled requests (as in the Python generator);
 *    requests still unanswered, or never sent, when the drain ends are errors.
 *  - Drain: after the last scheduled send time, wait at most 10 s for
 *    outstanding answers, then report.  achieved_rps = answered / (end - t0).
 *  - A connection closed by the server (EOF, reset, or after a response with
 *    "Connection: close") is reconnected; a request that was outstanding on it
 *    and not fully answered counts as an error.
 *
 * Response parsing: status code from the status line, "Content-Length"
 * (header names case-insensitive), "Connection: close".  Responses may arrive
 * split over any number of reads or all at once.  Interim 1xx responses are
 * skipped.  Chunked transfer encoding is NOT supported (this generator targets
 * servers that send Content-Length): a response with "Transfer-Encoding:
 * chunked" counts as an error and its connection is reconnected.  A response
 * with neither Content-Length nor chunked encoding is read until EOF.
 *
 * Waiting (the precision choice): the loop busy-polls epoll_wait(2) with a zero
 * timeout whenever a response is awaited or the next send is due within the
 * spin window (1 ms); only when idle with the next send further away does it
 * sleep, in epoll_pwait2(2) (timespec timeout, ns resolution, Linux >= 5.11,
 * timer slack lowered to 1 ns), waking one spin window early.  Measured on the
 * 2-vCPU VM this was written on: waking from an epoll sleep, even one ending
 * 100 us before the send, now and then took 1-4 ms (presumably the idle vCPU
 * being halted by the hypervisor), which made sends late and inflated latencies
 * at 2k req/s, whereas busy-polling kept the send lag under ~70 us.  Stalls it
 * cannot avoid (preemption by other tasks, interrupts, the hypervisor taking
 * the vCPU) are reported as warnings on stderr.  The cost is one core
 * at 100% for the run: pin the generator (taskset) to a core the server does
 * not use.  Without epoll_pwait2 (no syscall number at build time, or ENOSYS
 * at run time) it sleeps in epoll_wait(2) with a millisecond timeout, also
 * waking 1 ms early.  OPENLOOP_SPIN_US=N sets the spin window to N us; 0 turns
 * busy-polling off (sleep to the exact send time, less precise, little CPU).
 *
 * OPENLOOP_LATENCIES=PATH also writes every scheduled request to PATH, one
 * line each in schedule order: "<status> <latency_us> <send_lag_us>", status 0
 * for an error or an unanswered request (latency and lag then 0), so a caller
 * can merge several runs' latencies exactly (yarnit loadtest does).
 *
 * Exit status: 0 on success, 2 on bad arguments (usage on stderr), 1 when the
 * server cannot be reached at start or on another fatal error.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define LATE_NS NS_PER_MS              /* a send later than this is "late" */
#define DRAIN_NS (10 * NS_PER_S)       /* wait for answers after the last send */
#define CONNECT_TIMEOUT_NS (5 * NS_PER_S)
#define RETRY_NS (10 * NS_PER_MS)      /* back-off after a failed reconnect */
#define DEFAULT_SPIN_NS 1000000LL      /* busy-poll when a send is due within 1 ms */
#define FALLBACK_SPIN_NS NS_PER_MS     /* epoll_wait path: spin the last 1 ms */
#define HBUF 16384                     /* max response header block */
#define MAX_EVENTS 256
#define MAX_REQUESTS 100000000LL
#if defined(SYS_epoll_pwait2) && !defined(OPENLOOP_NO_PWAIT2)  /* -D to test the fallback */
#define HAVE_PWAIT2 1
#else
#define HAVE_PWAIT2 0
#endif

enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };
enum { P_HEADERS, P_BODY };

typedef struct {
    int fd;
    uint32_t gen;          /* bumped per socket: stale epoll events are dropped */
    int state;
    int want_out;          /* EPOLLOUT currently registered */
    int idle_pos;          /* index in idle[] while C_IDLE, else -1 */
    int64_t retry_at;      /* C_DOWN: when to reconnect */
    /* outstanding request */
    int64_t req;
    int64_t sched;
    size_t off;            /* bytes of the request written so far */
    /* response parser */
    int phase;
    int status;
    int close_after;
    int until_close;       /* no Content-Length: body runs until EOF */
    int64_t body_left;
    size_t hlen;
    char hbuf[HBUF];
} conn_t;

/* ---- globals (one thread) ---- */
static int ep = -1;
static conn_t *conns;
static int nconns;
static int *idle;
static int nidle;
static int nbusy, ndown;
static struct sockaddr_storage addr;
static socklen_t addrlen;

static char **reqbuf;
static size_t *reqlen;
static size_t nreq;

static int64_t total, next_due, queue_head;
static int64_t t0;
static double interval_ns;
static int64_t *lat_ns;      /* per request latency */
static int64_t *lag_ns;      /* per request: how late it was sent (actual send time - scheduled time) */
static uint16_t *status_of;  /* per request status, 0 = error / unanswered */
static int64_t errors, answered, late_sends, max_lag_ns;
static int64_t reconnects, stray_bytes, connect_failures;
static int64_t max_loop_gap_ns;  /* longest time between two loop passes while sending */
static int running;          /* 0 during startup: connection failures are fatal */
static int64_t spin_ns = DEFAULT_SPIN_NS;
#if HAVE_PWAIT2
static int have_pwait2 = 1;  /* cleared on ENOSYS (kernel < 5.11) */
#endif

static char scratch[65536];

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static inline int64_t sched_of(int64_t i) { return t0 + (int64_t)((double)i * interval_ns); }

static void die(const char *msg) {
    fprintf(stderr, "openloop: %s\n", msg);
    exit(1);
}

static void usage(const char *why) {
    if (why) fprintf(stderr, "openloop: %s\n", why);
    fprintf(stderr,
            "usage: openloop HOST PORT PATH RATE DURATION_S BODIES_FILE CONNECTIONS\n"
            "  open-loop HTTP/1.1 POST load at RATE req/s for DURATION_S s over CONNECTIONS\n"
            "  connections, bodies taken round-robin from the lines of BODIES_FILE;\n"
            "  prints one JSON object with latencies per status code.\n");
    exit(2);
}

/* ---- epoll helpers ---- */
static void ep_set(conn_t *c, int op, int want_out) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.u64 = ((uint64_t)c->gen << 32) | (uint32_t)(c - conns);
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) {
        perror("openloop: epoll_ctl");
        exit(1);
    }
    c->want_out = want_out;
}

static void idle_push(conn_t *c) {
    c->state = C_IDLE;
    c->idle_pos = nidle;
    idle[nidle++] = (int)(c - conns);
}

static void idle_remove(conn_t *c) {
    int pos = c->idle_pos, last = idle[--nidle];
    idle[pos] = last;
    conns[last].idle_pos = pos;
    c->idle_pos = -1;
}

static void set_state_leaving(conn_t *c) {
    if (c->state == C_IDLE) idle_remove(c);
    else if (c->state == C_BUSY) nbusy--;
    else if (c->state == C_DOWN) ndown--;
}

/* ---- connections ---- */
static void start_connect(conn_t *c);

static void connect_failed(conn_t *c, int err) {
    if (!running) {
        char host[256] = "?", serv[32] = "?";
        getnameinfo((struct sockaddr *)&addr, addrlen, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
        fprintf(stderr, "openloop: cannot connect to %s port %s: %s\n", host, serv, strerror(err));
        exit(1);
    }
    connect_failures++;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = C_DOWN;
    c->retry_at = now_ns() + RETRY_NS;
    ndown++;
}

static void connected(conn_t *c) {
    if (c->want_out) ep_set(c, EPOLL_CTL_MOD, 0);
    idle_push(c);
}

static void start_connect(conn_t *c) {
    int one = 1;
    c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        connect_failed(c, errno);
        return;
    }
    c->gen++;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, addrlen) == 0) {
        ep_set(c, EPOLL_CTL_ADD, 0);
        idle_push(c);
    } else if (errno == EINPROGRESS) {
        c->state = C_CONNECTING;
        ep_set(c, EPOLL_CTL_ADD, 1);
    } else {
        connect_failed(c, errno);
    }
}

/* Close and reconnect; the caller has already settled any outstanding request. */
static void reconnect(conn_t *c) {
    set_state_leaving(c);
    close(c->fd);  /* also removes it from the epoll set */
    c->fd = -1;
    c->want_out = 0;
    reconnects++;
    start_connect(c);
}

/* ---- requests ---- */
static void fail_request(conn_t *c) {
    errors++;
    status_of[c->req] = 0;
    c->req = -1;
    reconnect(c);
}

static void finish_request(conn_t *c, int64_t t) {
    lat_ns[c->req] = t - c->sched;
    status_of[c->req] = (uint16_t)c->status;
    answered++;
    c->req = -1;
}

static void send_request(conn_t *c, int64_t i) {
    idle_remove(c);
    c->state = C_BUSY;
    nbusy++;
    c->req = i;
    c->sched = sched_of(i);
    c->off = 0;
    c->phase = P_HEADERS;
    c->hlen = 0;
    c->status = 0;
    c->close_after = 0;
    c->until_close = 0;
    c->body_left = 0;
    const char *buf = reqbuf[i % (int64_t)nreq];
    size_t len = reqlen[i % (int64_t)nreq];
    int64_t lag = now_ns() - c->sched;
    lag_ns[i] = lag;
    if (lag > LATE_NS) late_sends++;
    if (lag > max_lag_ns) max_lag_ns = lag;
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            fail_request(c);
            return;
        }
        n = 0;
    }
    c->off = (size_t)n;
    if (c->off < len) ep_set(c, EPOLL_CTL_MOD, 1);
}

static void flush_request(conn_t *c) {
    const char *buf = reqbuf[c->req % (int64_t)nreq];
    size_t len = reqlen[c->req % (int64_t)nreq];
    ssize_t n = send(c->fd, buf + c->off, len - c->off, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) fail_request(c);
        return;
    }
    c->off += (size_t)n;
    if (c->off == len) ep_set(c, EPOLL_CTL_MOD, 0);
}

/* Release due requests into the FIFO and hand them to idle connections. */
static void pump(int64_t t) {
    while (next_due < total && sched_of(next_due) <= t) next_due++;
    while (queue_head < next_due && nidle > 0) send_request(&conns[idle[nidle - 1]], queue_head++);
}

/* ---- response parsing ---- */
static int header_value_has(const char *v, const char *end, const char *token) {
    size_t tl = strlen(token);
    for (const char *p = v; p + tl <= end; p++)
        if (strncasecmp(p, token, tl) == 0) return 1;
    return 0;
}

/* Parse the header block hbuf[0, hend).  Returns 0, or -1 on a malformed or
 * unsupported (chunked) response. */
static int parse_headers(conn_t *c, size_t hend) {
    const char *p = c->hbuf, *end = c->hbuf + hend;
    if (hend < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return -1;
    if (!isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]))
        return -1;
    int http10 = p[7] == '0', keep_alive = 0, have_length = 0;
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (c->status < 100) return -1;
    const char *line = memchr(p, '\n', (size_t)(end - p));
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        const char *le = eol;
        if (le > line && le[-1] == '\r') le--;
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            if (nl == 14 && strncasecmp(line, "content-length", 14) == 0) {
                char *ep_;
                errno = 0;
                long long cl = strtoll(v, &ep_, 10);
                if (ep_ == v || errno || cl < 0) return -1;
                c->body_left = cl;
                have_length = 1;
            } else if (nl == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                if (header_value_has(v, le, "chunked")) return -1;  /* not supported */
            } else if (nl == 10 && strncasecmp(line, "connection", 10) == 0) {
                if (header_value_has(v, le, "close")) c->close_after = 1;
                if (header_value_has(v, le, "keep-alive")) keep_alive = 1;
            }
        }
        line = eol;
    }
    if (http10 && !keep_alive) c->close_after = 1;
    if (!have_length) {
        c->body_left = 0;
        if (!(c->status < 200 || c->status == 204 || c->status == 304)) {
            c->until_close = 1;
            c->close_after = 1;
        }
    }
    return 0;
}

/* The response on c is complete at time t; extra = bytes beyond it. */
static void response_done(conn_t *c, int64_t t, size_t extra) {
    int unsent = c->off < reqlen[c->req % (int64_t)nreq];
    finish_request(c, t);
    if (extra) stray_bytes += (int64_t)extra;
    if (c->close_after || extra || unsent) {
        /* server wants to close, or the stream is out of sync (bytes after the
         * response, or an answer before the request was fully written) */
        reconnect(c);
    } else {
        nbusy--;
        idle_push(c);
    }
    pump(t);
}

/* Consume header bytes hbuf[0, hlen) that were just extended from old_hlen. */
static void on_header_bytes(conn_t *c, size_t old_hlen, int64_t t) {
    for (;;) {
        size_t from = old_hlen >= 3 ? old_hlen - 3 : 0;
        char *hdr_end = memmem(c->hbuf + from, c->hlen - from, "\r\n\r\n", 4);
        if (!hdr_end) {
            if (c->hlen == HBUF) fail_request(c);  /* header block too large */
            return;
        }
        size_t hend = (size_t)(hdr_end - c->hbuf) + 4;
        if (parse_headers(c, hend) < 0) {
            fail_request(c);
            return;
        }
        size_t rest = c->hlen - hend;
        if (c->status < 200 && c->status != 101) {  /* interim response: skip it */
            memmove(c->hbuf, c->hbuf + hend, rest);
            c->hlen = rest;
            c->close_after = c->until_close = 0;
            old_hlen = 0;
            continue;
        }
        if (c->until_close) {  /* body runs to EOF: ignore the bytes */
            c->phase = P_BODY;
            return;
        }
        if ((int64_t)rest >= c->body_left) {
            response_done(c, t, rest - (size_t)c->body_left);
            return;
        }
        c->body_left -= (int64_t)rest;
        c->phase = P_BODY;
        return;
    }
}

static void on_readable(conn_t *c) {
    for (;;) {
        char *dst;
        size_t cap;
        if (c->state == C_BUSY && c->phase == P_HEADERS) {
            dst = c->hbuf + c->hlen;
            cap = HBUF - c->hlen;
        } else {
            dst = scratch;
            cap = sizeof scratch;
        }
        ssize_t n = recv(c->fd, dst, cap, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
        }
        int64_t t = now_ns();
        if (n <= 0) {  /* EOF or error */
            if (c->state == C_BUSY) {
                if (n == 0 && c->phase == P_BODY && c->until_close) response_done(c, t, 0);
                else fail_request(c);
            } else {
                reconnect(c);
            }
            return;
        }
        if (c->state != C_BUSY) {  /* bytes nobody asked for: resynchronise */
            stray_bytes += n;
            reconnect(c);
            return;
        }
        if (c->phase == P_HEADERS) {
            size_t old = c->hlen;
            c->hlen += (size_t)n;
            on_header_bytes(c, old, t);
        } else if (!c->until_close) {
            if (n >= c->body_left) {
                response_done(c, t, (size_t)(n - c->body_left));
            } else {
                c->body_left -= n;
            }
        }
        if ((size_t)n < cap) return;  /* drained; level-triggered epoll calls again */
        if (c->state != C_BUSY) return;
    }
}

static void on_event(uint64_t data, uint32_t events) {
    conn_t *c = &conns[(uint32_t)data];
    if (c->fd < 0 || c->gen != (uint32_t)(data >> 32)) return;  /* event of a closed socket */
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
        if (err) {
            connect_failed(c, err);
        } else {
            connected(c);
        }
        return;
    }
    if (c->state == C_BUSY && (events & EPOLLOUT) && c->off < reqlen[c->req % (int64_t)nreq]) {
        flush_request(c);
        if (c->state != C_BUSY) return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
}

/* ---- waiting ---- */
static int wait_events(struct epoll_event *evs, int64_t dt) {
    if (dt <= 0) return epoll_wait(ep, evs, MAX_EVENTS, 0);
#if HAVE_PWAIT2
    if (have_pwait2) {
        if (dt <= spin_ns) return epoll_wait(ep, evs, MAX_EVENTS, 0);
        int64_t s = dt - spin_ns;
        struct timespec ts = {.tv_sec = s / NS_PER_S, .tv_nsec = s % NS_PER_S};
        int r = (int)syscall(SYS_epoll_pwait2, ep, evs, MAX_EVENTS, &ts, NULL, (size_t)0);
        if (r >= 0 || errno != ENOSYS) return r;
        have_pwait2 = 0;  /* kernel older than 5.11: fall back for good */
    }
#endif
    if (dt <= FALLBACK_SPIN_NS) return epoll_wait(ep, evs, MAX_EVENTS, 0);
    int64_t ms = (dt - FALLBACK_SPIN_NS) / NS_PER_MS;  /* rounds down: wake early, then spin */
    if (ms > 1000) ms = 1000;
    return epoll_wait(ep, evs, MAX_EVENTS, (int)ms);
}

/* ---- setup ---- */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) die("out of memory");
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void build_requests(const char *host, const char *path, const char *file) {
    size_t flen;
    char *data = read_file(file, &flen);
    if (!data) {
        fprintf(stderr, "openloop: cannot read BODIES_FILE %s: %s\n", file, strerror(errno));
        usage(NULL);
    }
    size_t cap = 16;
    reqbuf = malloc(cap * sizeof *reqbuf);
    reqlen = malloc(cap * sizeof *reqlen);
    char *p = data, *end = data + flen;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *b = p, *e = le;  /* strip whitespace like Python's str.strip() */
        while (b < e && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        if (e > b) {
            if (nreq == cap) {
                cap *= 2;
                reqbuf = realloc(reqbuf, cap * sizeof *reqbuf);
                reqlen = realloc(reqlen, cap * sizeof *reqlen);
            }
            if (!reqbuf || !reqlen) die("out of memory");
            size_t blen = (size_t)(e - b);
            size_t hcap = strlen(path) + strlen(host) + 128;
            char *r = malloc(hcap + blen);
            if (!r) die("out of memory");
            int h = snprintf(r, hcap,
                             "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             path, host, blen);
            memcpy(r + h, b, blen);
            reqbuf[nreq] = r;
            reqlen[nreq] = (size_t)h + blen;
            nreq++;
        }
        p = le + 1;
    }
    free(data);
    if (nreq == 0) usage("BODIES_FILE has no non-blank line");
}

static double parse_pos_double(const char *s, const char *what) {
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || *e || errno || !(v > 0) || v > 1e12) {
        fprintf(stderr, "openloop: %s must be a positive number, got '%s'\n", what, s);
        usage(NULL);
    }
    return v;
}

static long parse_int(const char *s, const char *what, long lo, long hi) {
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (e == s || *e || errno || v < lo || v > hi) {
        fprintf(stderr, "openloop: %s must be an integer in [%ld, %ld], got '%s'\n", what, lo, hi, s);
        usage(NULL);
    }
    return v;
}

static void connect_all(void) {
    struct epoll_event evs[MAX_EVENTS];
    for (int i = 0; i < nconns; i++) start_connect(&conns[i]);
    int64_t deadline = now_ns() + CONNECT_TIMEOUT_NS;
    while (nidle < nconns) {
        int64_t t = now_ns();
        if (t >= deadline) die("cannot connect: timed out after 5 s");
        int n = epoll_wait(ep, evs, MAX_EVENTS, (int)((deadline - t) / NS_PER_MS) + 1);
        if (n < 0 && errno != EINTR) die("epoll_wait failed");
        for (int k = 0; k < n; k++) on_event(evs[k].data.u64, evs[k].events);
    }
}

/* ---- report ---- */
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double q) {
    size_t i = (size_t)(q * (double)n);
    if (i > n - 1) i = n - 1;
    return (double)v[i] / 1e6;
}

static void report(double rate, int64_t t_end) {
    static int64_t counts[1000];
    for (int64_t i = 0; i < total; i++) counts[status_of[i]]++;
    double elapsed = (double)(t_end - t0) / 1e9;
    printf("{\"offered_rps\": %.10g, \"achieved_rps\": %.3f, \"errors\": %lld, \"sent\": %lld, "
           "\"late_sends\": %lld, \"max_send_lag_ms\": %.4f, \"by_status\": {",
           rate, elapsed > 0 ? (double)answered / elapsed : 0.0, (long long)errors, (long long)total,
           (long long)late_sends, (double)max_lag_ns / 1e6);
    int64_t *tmp = malloc((size_t)(answered > 0 ? answered : 1) * sizeof *tmp);
    if (!tmp) die("out of memory");
    int first = 1;
    for (int s = 1; s < 1000; s++) {
        if (!counts[s]) continue;
        size_t n = 0;
        for (int64_t i = 0; i < total; i++)
            if (status_of[i] == s) tmp[n++] = lat_ns[i];
        qsort(tmp, n, sizeof *tmp, cmp_i64);
        printf("%s\"%d\": {\"count\": %zu, \"p50_ms\": %.4f, \"p95_ms\": %.4f, \"p99_ms\": %.4f, "
               "\"p999_ms\": %.4f, \"max_ms\": %.4f, ",
               first ? "" : ", ", s, n, pct_ms(tmp, n, 0.5), pct_ms(tmp, n, 0.95), pct_ms(tmp, n, 0.99),
               pct_ms(tmp, n, 0.999), (double)tmp[n - 1] / 1e6);
        /* The same answers timed from the moment each request actually left (its send lag taken off):
           what the server and the network added, without the generator's own lateness. */
        n = 0;
        for (int64_t i = 0; i < total; i++)
            if (status_of[i] == s) tmp[n++] = lat_ns[i] - lag_ns[i];
        qsort(tmp, n, sizeof *tmp, cmp_i64);
        printf("\"from_send_p50_ms\": %.4f, \"from_send_p99_ms\": %.4f}", pct_ms(tmp, n, 0.5),
               pct_ms(tmp, n, 0.99));
        first = 0;
    }
    printf("}}\n");
    fflush(stdout);
    free(tmp);
    const char *dump = getenv("OPENLOOP_LATENCIES");
    if (dump && *dump) {
        FILE *f = fopen(dump, "w");
        if (!f) {
            fprintf(stderr, "openloop: cannot write OPENLOOP_LATENCIES %s: %s\n", dump, strerror(errno));
            exit(1);
        }
        for (int64_t i = 0; i < total; i++) {
            int answered_i = status_of[i] != 0;
            fprintf(f, "%d %lld %lld\n", status_of[i], answered_i ? (long long)(lat_ns[i] / 1000) : 0LL,
                    answered_i ? (long long)(lag_ns[i] / 1000) : 0LL);
        }
        if (fclose(f) != 0) {
            fprintf(stderr, "openloop: cannot write OPENLOOP_LATENCIES %s: %s\n", dump, strerror(errno));
            exit(1);
        }
    }
    if (reconnects || connect_failures || stray_bytes)
        fprintf(stderr, "openloop: %lld reconnects, %lld failed connects, %lld stray response bytes\n",
                (long long)reconnects, (long long)connect_failures, (long long)stray_bytes);
    if (max_loop_gap_ns > NS_PER_MS)  /* sends that fell due meanwhile went out late */
        fprintf(stderr, "openloop: warning: the generator loop stalled for up to %.3f ms "
                "(preemption, interrupts or the hypervisor)\n", (double)max_loop_gap_ns / 1e6);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_nivcsw > 50)
        fprintf(stderr, "openloop: warning: preempted %ld times by other tasks on this core; "
                "latencies and late_sends include that noise\n", ru.ru_nivcsw);
}

int main(int argc, char **argv) {
    if (argc != 8) usage(argc == 1 ? NULL : "expected 7 arguments");
    const char *host = argv[1], *port = argv[2], *path = argv[3], *bodies = argv[6];
    parse_int(port, "PORT", 1, 65535);
    if (path[0] != '/' || strpbrk(path, " \r\n")) usage("PATH must start with '/' and contain no spaces");
    if (!*host || strpbrk(host, " \r\n")) usage("HOST must be a non-empty name without spaces");
    double rate = parse_pos_double(argv[4], "RATE");
    double duration = parse_pos_double(argv[5], "DURATION_S");
    nconns = (int)parse_int(argv[7], "CONNECTIONS", 1, 100000);
    double tot = rate * duration;
    if (tot < 1) usage("RATE * DURATION_S must be at least 1 request");
    if (tot > (double)MAX_REQUESTS) usage("RATE * DURATION_S must be at most 1e8 requests");
    total = (int64_t)tot;
    interval_ns = 1e9 / rate;
    build_requests(host, path, bodies);

    const char *spin = getenv("OPENLOOP_SPIN_US");
    if (spin && *spin) spin_ns = (int64_t)(atof(spin) * 1000.0);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* per-request results, touched now so no page faults happen mid-run */
    lat_ns = calloc((size_t)total, sizeof *lat_ns);
    lag_ns = calloc((size_t)total, sizeof *lag_ns);
    status_of = calloc((size_t)total, sizeof *status_of);
    conns = calloc((size_t)nconns, sizeof *conns);
    idle = calloc((size_t)nconns, sizeof *idle);
    if (!lat_ns || !lag_ns || !status_of || !conns || !idle) die("out of memory");
    memset(lat_ns, 0, (size_t)total * sizeof *lat_ns);
    memset(lag_ns, 0, (size_t)total * sizeof *lag_ns);
    memset(status_of, 0, (size_t)total * sizeof *status_of);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].idle_pos = -1;
        conns[i].req = -1;
    }

    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai) {
        fprintf(stderr, "openloop: cannot connect: cannot resolve %s: %s\n", host, gai_strerror(gai));
        return 1;
    }
    memcpy(&addr, res->ai_addr, res->ai_addrlen);  /* first address, like asyncio */
    addrlen = res->ai_addrlen;
    freeaddrinfo(res);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1 failed");
    connect_all();
    running = 1;

    struct epoll_event evs[MAX_EVENTS];
    t0 = now_ns() + 50 * NS_PER_MS;
    int64_t deadline = sched_of(total - 1) + DRAIN_NS, t, prev = t0;
    for (;;) {
        t = now_ns();
        if (next_due < total && t > t0 && t - prev > max_loop_gap_ns) max_loop_gap_ns = t - prev;
        prev = t;
        pump(t);
        if (ndown) {
            for (int i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                if (c->state == C_DOWN && c->retry_at <= t) {
                    ndown--;
                    start_connect(c);
                }
            }
        }
        if (queue_head == total && nbusy == 0) break;
        if (t >= deadline) break;
        int64_t wake = deadline;
        /* with a backlog and no idle connection, only socket events matter */
        if (next_due < total && queue_head == next_due) {
            int64_t s = sched_of(next_due);
            if (s < wake) wake = s;
        }
        if (ndown) {
            for (int i = 0; i < nconns; i++)
                if (conns[i].state == C_DOWN && conns[i].retry_at < wake) wake = conns[i].retry_at;
        }
        int64_t dt = wake - t;
        if (spin_ns > 0 && nbusy > 0) dt = 0;  /* an answer is awaited: poll for it */
        int n = wait_events(evs, dt);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("openloop: epoll wait");
            return 1;
        }
        for (int k = 0; k < n; k++) on_event(evs[k].data.u64, evs[k].events);
    }
    t = now_ns();
    /* whatever is still outstanding or was never sent is unanswered */
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == C_BUSY) errors++;
    errors += total - queue_head;
    report(rate, t);
    return 0;
}
