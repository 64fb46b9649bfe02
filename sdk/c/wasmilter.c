/*
 * wasmilter.c — the C SDK's implementation of plugin ABI v1 (sdk/ABI.md).
 * Compile it together with the plugin; see wasmilter.h for the API.
 *
 * Layout: a per-call arena; a byte buffer for answers; the decoder of the
 * field encoding (§3); event, config, stamp, record and properties decoding;
 * the host function wrappers (§6); the exports (§1).
 */
#include "wasmilter.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- host imports (module "wasmilter", §6) ---- */

#define WM_IMPORT(name) __attribute__((import_module("wasmilter"), import_name(name)))

WM_IMPORT("log") void wm__log(int32_t level, const char *ptr, int32_t len);
WM_IMPORT("now") int64_t wm__now(void);
WM_IMPORT("macro") int32_t wm__macro(const char *name, int32_t name_len, char *out, int32_t cap);
WM_IMPORT("stamp") int32_t wm__stamp(char *out, int32_t cap);
WM_IMPORT("record") int32_t wm__record(char *out, int32_t cap);
WM_IMPORT("properties") int32_t wm__properties(char *out, int32_t cap);
WM_IMPORT("kv_get") int32_t wm__kv_get(const char *key, int32_t key_len, char *out, int32_t cap);
WM_IMPORT("kv_set") int32_t wm__kv_set(const char *key, int32_t key_len, const void *val, int32_t val_len, int64_t ttl_ms);
WM_IMPORT("kv_incr") int32_t wm__kv_incr(const char *key, int32_t key_len, int64_t delta, int64_t ttl_ms, int64_t *out);

#define RESULT_ABSENT (-1)

/* Field tags of sdk/ABI.md §3. */
enum { EV_HOOK = 1, EV_NOW, EV_CLIENT_HOST, EV_CLIENT_ADDR, EV_CLIENT_PORT, EV_FAMILY, EV_HELO,
       EV_QUEUE_ID, EV_FROM, EV_FROM_ARG, EV_RCPT, EV_HEADER };
enum { ANS_VERDICT = 1, ANS_CODE, ANS_ENHANCED, ANS_TEXT, ANS_ACTION };
enum { INIT_ERROR = 1, INIT_FEATURES, INIT_HOOKS };
enum { CONFIG_ENTRY = 1 };
enum { ACT_ADD_HEADER = 1, ACT_INSERT_HEADER, ACT_CHANGE_HEADER, ACT_DELETE_HEADER, ACT_QUARANTINE,
       ACT_CHANGE_FROM, ACT_ADD_RCPT, ACT_DEL_RCPT, ACT_NOTIFY, ACT_EXPIRE };

/* ---- failing ---- */

/* fatal logs why and traps: the host then applies the plugin's on_error
 * policy, which is the only honest outcome when the SDK cannot go on. */
__attribute__((noreturn)) static void fatal(const char *why) {
    wm__log(WM_LOG_ERROR, why, (int32_t)strlen(why));
    __builtin_trap();
}

static void *must(void *p) {
    if (p == NULL)
        fatal("wasmilter C SDK: out of memory");
    return p;
}

/* ---- the per-call arena ---- */

/* Memory handed to handlers comes from chunks freed together when the next
 * call starts, so a handler never has to free anything. During init the
 * arena is bypassed: what init gets (config strings, wm_format) is kept for
 * the life of the instance. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) char data[];
} chunk;

static chunk *arena;      /* the chunk being filled; older ones follow */
static bool in_init;      /* allocations outlive the call */

static void *arena_alloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (in_init)
        return must(malloc(n ? n : 1));
    if (arena == NULL || arena->cap - arena->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        chunk *c = must(malloc(sizeof(chunk) + cap));
        c->next = arena;
        c->used = 0;
        c->cap = cap;
        arena = c;
    }
    void *p = arena->data + arena->used;
    arena->used += n;
    return p;
}

/* arena_reset frees every chunk but the newest, which is reused. */
static void arena_reset(void) {
    if (arena == NULL)
        return;
    chunk *c = arena->next;
    while (c != NULL) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    arena->next = NULL;
    arena->used = 0;
}

static char *arena_strndup(const char *s, size_t n) {
    char *p = arena_alloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *wm_alloc(size_t size) { return arena_alloc(size); }

const char *wm_format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return "";
    char *p = arena_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- the answer buffer ---- */

/* One buffer serves every answer; the host reads it before calling the
 * instance again (§2), so reusing it is safe. */
static uint8_t *out;
static size_t out_len, out_cap;

static void out_reserve(size_t n) {
    if (out_cap - out_len >= n)
        return;
    size_t cap = out_cap ? out_cap : 1024;
    while (cap - out_len < n)
        cap *= 2;
    out = must(realloc(out, cap));
    out_cap = cap;
}

static void put_byte(uint8_t b) {
    out_reserve(1);
    out[out_len++] = b;
}

static void put_uvarint(uint64_t v) {
    while (v >= 0x80) {
        put_byte((uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte((uint8_t)v);
}

static size_t uvarint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_raw(const char *s, size_t n) {
    out_reserve(n);
    memcpy(out + out_len, s, n);
    out_len += n;
}

/* put_str writes a "str": uvarint length, bytes. */
static void put_str(const char *s) {
    size_t n = s ? strlen(s) : 0;
    put_uvarint(n);
    put_raw(s, n);
}

static size_t str_len(const char *s) {
    size_t n = s ? strlen(s) : 0;
    return uvarint_len(n) + n;
}

static void put_uint_field(uint8_t tag, uint64_t v) {
    put_byte(tag);
    put_uvarint(uvarint_len(v));
    put_uvarint(v);
}

static void put_string_field(uint8_t tag, const char *s) {
    if (s == NULL || *s == 0)
        return; /* empty strings are left out (§3) */
    put_byte(tag);
    put_str(s);
}

/* packed returns ptr<<32|len of the answer, or 0 for an empty one. */
static int64_t packed(void) {
    if (out_len == 0)
        return 0;
    return (int64_t)((uint64_t)(uintptr_t)out << 32 | (uint64_t)out_len);
}

/* ---- decoding the field encoding ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

static bool rd_uvarint(reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (size_t i = 0; i < r->n && i < 10; i++) {
        uint8_t c = r->p[i];
        if (i == 9 && c > 1)
            return false; /* more than 64 bits */
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (c < 0x80) {
            r->p += i + 1;
            r->n -= i + 1;
            *v = x;
            return true;
        }
    }
    return false;
}

/* rd_bytes reads a length-prefixed byte string. */
static bool rd_bytes(reader *r, reader *b) {
    uint64_t n;
    if (!rd_uvarint(r, &n) || n > r->n)
        return false;
    b->p = r->p;
    b->n = (size_t)n;
    r->p += n;
    r->n -= n;
    return true;
}

static bool rd_field(reader *r, uint8_t *tag, reader *payload) {
    if (r->n == 0)
        return false;
    *tag = r->p[0];
    r->p++;
    r->n--;
    return rd_bytes(r, payload);
}

/* rd_int reads a payload that is exactly one uvarint. */
static bool rd_int(reader payload, uint64_t *v) { return rd_uvarint(&payload, v) && payload.n == 0; }

static const char *rd_text(reader payload) { return arena_strndup((const char *)payload.p, payload.n); }

static bool rd_str(reader *r, const char **s) {
    reader b;
    if (!rd_bytes(r, &b))
        return false;
    *s = rd_text(b);
    return true;
}

/* rd_str_list reads "uvarint n, n × str" into a new array. */
static bool rd_str_list(reader *r, const char ***list, size_t *n) {
    uint64_t count;
    if (!rd_uvarint(r, &count) || count > r->n) /* each str takes at least a byte */
        return false;
    const char **l = arena_alloc(sizeof(char *) * (size_t)(count ? count : 1));
    for (size_t i = 0; i < count; i++)
        if (!rd_str(r, &l[i]))
            return false;
    *list = l;
    *n = (size_t)count;
    return true;
}

/* ---- the event ---- */

static const wm_plugin *plugin(void) { return &wasmilter_plugin; }

/* count_event counts the repeated fields so that arrays are sized once. */
static bool count_event(reader r, size_t *nargs, size_t *nrcpts, size_t *nheaders) {
    uint8_t tag;
    reader payload;
    *nargs = *nrcpts = *nheaders = 0;
    while (r.n > 0) {
        if (!rd_field(&r, &tag, &payload))
            return false;
        *nargs += tag == EV_FROM_ARG;
        *nrcpts += tag == EV_RCPT;
        *nheaders += tag == EV_HEADER;
    }
    return true;
}

static bool decode_int_field(uint8_t tag, reader payload, wm_msg *m) {
    uint64_t v;
    if (!rd_int(payload, &v))
        return false;
    if (tag == EV_HOOK)
        m->hook = (wm_hook)v;
    else if (tag == EV_NOW)
        m->now = (int64_t)v;
    else
        m->client_port = (int)v;
    return true;
}

static bool decode_event_field(uint8_t tag, reader payload, wm_msg *m, const char **args, wm_rcpt *rcpts,
                               wm_header *headers) {
    switch (tag) {
    case EV_HOOK:
    case EV_NOW:
    case EV_CLIENT_PORT:
        return decode_int_field(tag, payload, m);
    case EV_CLIENT_HOST: m->client_host = rd_text(payload); break;
    case EV_CLIENT_ADDR: m->client_addr = rd_text(payload); break;
    case EV_FAMILY: m->family = rd_text(payload); break;
    case EV_HELO: m->helo = rd_text(payload); break;
    case EV_QUEUE_ID: m->queue_id = rd_text(payload); break;
    case EV_FROM: m->from = rd_text(payload); break;
    case EV_FROM_ARG: args[m->nfrom_args++] = rd_text(payload); break;
    case EV_RCPT: {
        wm_rcpt *rc = &rcpts[m->nrcpts++];
        return rd_str(&payload, &rc->addr) && rd_str_list(&payload, &rc->args, &rc->nargs);
    }
    case EV_HEADER: {
        wm_header *h = &headers[m->nheaders++];
        if (!rd_str(&payload, &h->name))
            return false;
        h->value = rd_text(payload); /* the rest of the payload */
        h->value_len = payload.n;
        break;
    }
    default: break; /* a newer host's field: skip it (§3) */
    }
    return true;
}

static bool decode_event(reader r, wm_msg *m) {
    size_t nargs, nrcpts, nheaders;
    if (!count_event(r, &nargs, &nrcpts, &nheaders))
        return false;
    const char **args = arena_alloc(sizeof(char *) * (nargs + 1));
    wm_rcpt *rcpts = arena_alloc(sizeof(wm_rcpt) * (nrcpts + 1));
    wm_header *headers = arena_alloc(sizeof(wm_header) * (nheaders + 1));
    *m = (wm_msg){.client_host = "", .client_addr = "", .family = "", .helo = "", .queue_id = "", .from = "",
                  .from_args = args, .rcpts = rcpts, .headers = headers};
    uint8_t tag;
    reader payload;
    while (r.n > 0) {
        if (!rd_field(&r, &tag, &payload) || !decode_event_field(tag, payload, m, args, rcpts, headers))
            return false;
    }
    return true;
}

/* ---- reading the message ---- */

static bool name_is(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z')
            x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z')
            y += 'a' - 'A';
        if (x != y)
            return false;
    }
    return *a == *b;
}

const char *wm_header_nth(const wm_msg *msg, const char *name, size_t n) {
    for (size_t i = 0; i < msg->nheaders; i++)
        if (name_is(msg->headers[i].name, name) && --n == 0)
            return msg->headers[i].value;
    return NULL;
}

const char *wm_header_get(const wm_msg *msg, const char *name) { return wm_header_nth(msg, name, 1); }

size_t wm_header_count(const wm_msg *msg, const char *name) {
    size_t n = 0;
    for (size_t i = 0; i < msg->nheaders; i++)
        n += name_is(msg->headers[i].name, name);
    return n;
}

const wm_rcpt *wm_current_rcpt(const wm_msg *msg) { return msg->nrcpts ? &msg->rcpts[msg->nrcpts - 1] : NULL; }

/* ---- verdicts ---- */

static const char *copy_or_null(const char *s) { return s ? arena_strndup(s, strlen(s)) : NULL; }

static wm_verdict verdict(wm_verdict_kind kind, int code, const char *enhanced, const char *text) {
    return (wm_verdict){.kind = kind, .code = code, .enhanced = copy_or_null(enhanced), .text = copy_or_null(text)};
}

wm_verdict wm_continue(void) { return verdict(WM_CONTINUE, 0, NULL, NULL); }
wm_verdict wm_accept(void) { return verdict(WM_ACCEPT, 0, NULL, NULL); }
wm_verdict wm_discard(void) { return verdict(WM_DISCARD, 0, NULL, NULL); }
wm_verdict wm_reject(int code, const char *enhanced, const char *text) {
    return verdict(WM_REJECT, code, enhanced, text);
}
wm_verdict wm_tempfail(int code, const char *enhanced, const char *text) {
    return verdict(WM_TEMPFAIL, code, enhanced, text);
}

static void put_verdict(wm_verdict v) {
    if (v.kind != WM_CONTINUE)
        put_uint_field(ANS_VERDICT, (uint64_t)v.kind);
    if (v.code != 0)
        put_uint_field(ANS_CODE, (uint64_t)v.code);
    put_string_field(ANS_ENHANCED, v.enhanced);
    put_string_field(ANS_TEXT, v.text);
}

/* ---- actions ---- */

/* Actions are encoded into the answer as they are queued; the verdict's
 * fields follow after the handler returns (field order is free, §3). */
static void put_action(uint8_t kind, size_t index, const char *name, const char *value, const char *const *args,
                       size_t nargs) {
    size_t n = 1 + uvarint_len(index) + str_len(name) + str_len(value) + uvarint_len(nargs);
    for (size_t i = 0; i < nargs; i++)
        n += str_len(args[i]);
    put_byte(ANS_ACTION);
    put_uvarint(n);
    put_byte(kind);
    put_uvarint(index);
    put_str(name);
    put_str(value);
    put_uvarint(nargs);
    for (size_t i = 0; i < nargs; i++)
        put_str(args[i]);
}

void wm_add_header(wm_msg *msg, const char *name, const char *value) {
    (void)msg;
    put_action(ACT_ADD_HEADER, 0, name, value, NULL, 0);
}
void wm_insert_header(wm_msg *msg, size_t index, const char *name, const char *value) {
    (void)msg;
    put_action(ACT_INSERT_HEADER, index, name, value, NULL, 0);
}
void wm_change_header(wm_msg *msg, const char *name, size_t occurrence, const char *value) {
    (void)msg;
    put_action(ACT_CHANGE_HEADER, occurrence, name, value, NULL, 0);
}
void wm_delete_header(wm_msg *msg, const char *name, size_t occurrence) {
    (void)msg;
    put_action(ACT_DELETE_HEADER, occurrence, name, NULL, NULL, 0);
}
void wm_quarantine(wm_msg *msg, const char *reason) {
    (void)msg;
    put_action(ACT_QUARANTINE, 0, NULL, reason, NULL, 0);
}
void wm_change_from(wm_msg *msg, const char *addr, const char *const *args, size_t nargs) {
    (void)msg;
    put_action(ACT_CHANGE_FROM, 0, NULL, addr, args, nargs);
}
void wm_add_rcpt(wm_msg *msg, const char *addr, const char *const *args, size_t nargs) {
    (void)msg;
    put_action(ACT_ADD_RCPT, 0, NULL, addr, args, nargs);
}
void wm_del_rcpt(wm_msg *msg, const char *addr) {
    (void)msg;
    put_action(ACT_DEL_RCPT, 0, NULL, addr, NULL, 0);
}
void wm_notify(wm_msg *msg, const char *text) {
    (void)msg;
    put_action(ACT_NOTIFY, 0, NULL, text, NULL, 0);
}
void wm_expire(wm_msg *msg, const char *text) {
    (void)msg;
    put_action(ACT_EXPIRE, 0, NULL, text, NULL, 0);
}

/* ---- host functions ---- */

void wm_log(wm_log_level level, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        wm__log((int32_t)level, small, n);
        return;
    }
    char *big = must(malloc((size_t)n + 1));
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    wm__log((int32_t)level, big, n);
    free(big);
}

int64_t wm_now(void) { return wm__now(); }

/* A host function that writes into (out, cap) and returns the length. */
typedef int32_t (*fetcher)(const char *key, int32_t key_len, char *out, int32_t cap);

static int32_t fetch_macro(const char *k, int32_t n, char *o, int32_t c) { return wm__macro(k, n, o, c); }
static int32_t fetch_kv(const char *k, int32_t n, char *o, int32_t c) { return wm__kv_get(k, n, o, c); }
static int32_t fetch_stamp(const char *k, int32_t n, char *o, int32_t c) { return (void)k, (void)n, wm__stamp(o, c); }
static int32_t fetch_record(const char *k, int32_t n, char *o, int32_t c) { return (void)k, (void)n, wm__record(o, c); }
static int32_t fetch_props(const char *k, int32_t n, char *o, int32_t c) {
    return (void)k, (void)n, wm__properties(o, c);
}

/* fetch asks the host, growing the buffer and asking again when the answer
 * did not fit (§6). The result is NUL-terminated, in the arena; NULL means
 * absent. Three rounds cover a value that changed between two calls
 * without letting a misbehaving host loop us forever. */
static const char *fetch(fetcher call, const char *key, size_t *len) {
    int32_t key_len = key ? (int32_t)strlen(key) : 0;
    int32_t cap = 256;
    for (int round = 0; round < 3; round++) {
        char *buf = arena_alloc((size_t)cap + 1);
        int32_t n = call(key, key_len, buf, cap);
        if (n < 0)
            return NULL;
        if (n <= cap) {
            buf[n] = 0;
            if (len)
                *len = (size_t)n;
            return buf;
        }
        cap = n;
    }
    return NULL;
}

const char *wm_macro(const wm_msg *msg, const char *name) {
    (void)msg;
    return fetch(fetch_macro, name, NULL);
}

const char *wm_kv_get(const char *key, size_t *len) { return fetch(fetch_kv, key, len); }

int wm_kv_set(const char *key, const void *value, size_t len, int64_t ttl_ms) {
    return wm__kv_set(key, (int32_t)strlen(key), value, (int32_t)len, ttl_ms);
}

int wm_kv_incr(const char *key, int64_t delta, int64_t ttl_ms, int64_t *result) {
    int64_t v = 0; /* the host writes 8 little-endian bytes: wasm's own order */
    int32_t rc = wm__kv_incr(key, (int32_t)strlen(key), delta, ttl_ms, &v);
    if (rc == 0 && result)
        *result = v;
    return rc;
}

/* A decoded structure field: where a tag's value goes. */
typedef enum { F_TEXT, F_INT, F_INT32, F_BOOL } field_kind;
typedef struct {
    uint8_t tag;
    field_kind kind;
    void *dst;
} field;

static bool decode_fields(const char *data, size_t n, const field *fields, size_t nfields,
                          bool (*extra)(uint8_t tag, reader payload, void *ctx), void *ctx) {
    reader r = {(const uint8_t *)data, n};
    uint8_t tag;
    reader payload;
    while (r.n > 0) {
        if (!rd_field(&r, &tag, &payload))
            return false;
        const field *f = NULL;
        for (size_t i = 0; i < nfields; i++)
            if (fields[i].tag == tag)
                f = &fields[i];
        if (f == NULL) {
            if (extra && !extra(tag, payload, ctx))
                return false;
            continue;
        }
        uint64_t v = 0;
        if (f->kind == F_TEXT) {
            *(const char **)f->dst = rd_text(payload);
        } else if (!rd_int(payload, &v)) {
            return false;
        } else if (f->kind == F_INT) {
            *(int64_t *)f->dst = (int64_t)v;
        } else if (f->kind == F_INT32) {
            *(int *)f->dst = (int)v;
        } else {
            *(bool *)f->dst = v != 0;
        }
    }
    return true;
}

/* get_decoded fetches an encoded value and decodes it; a value that does
 * not decode is logged and reported as absent. */
static bool get_decoded(fetcher call, const char *what, const field *fields, size_t nfields,
                        bool (*extra)(uint8_t, reader, void *), void *ctx) {
    size_t n;
    const char *data = fetch(call, NULL, &n);
    if (data == NULL)
        return false;
    if (!decode_fields(data, n, fields, nfields, extra, ctx)) {
        wm_log(WM_LOG_ERROR, "wasmilter C SDK: cannot decode the %s from the host", what);
        return false;
    }
    return true;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool stamp_invalid(uint8_t tag, reader payload, void *ctx) {
    wm_stamp *s = ctx;
    uint64_t v;
    if (tag != 6)
        return true;
    if (!rd_int(payload, &v))
        return false;
    uint32_t *list = arena_alloc(sizeof(uint32_t) * (s->ninvalid + 1));
    memcpy(list, s->invalid, sizeof(uint32_t) * s->ninvalid);
    list[s->ninvalid++] = (uint32_t)v;
    s->invalid = list;
    return true;
}

bool wm_get_stamp(const wm_msg *msg, wm_stamp *s) {
    (void)msg;
    int64_t state = 0;
    *s = (wm_stamp){.id = "", .header_name = "", .header_value = ""};
    const field fields[] = {{1, F_TEXT, &s->id}, {2, F_INT, &s->first_seen}, {3, F_TEXT, &s->header_name},
                            {4, F_TEXT, &s->header_value}, {5, F_INT, &state}};
    bool ok = get_decoded(fetch_stamp, "stamp", fields, COUNT(fields), stamp_invalid, s);
    s->state = (wm_stamp_state)state;
    return ok;
}

bool wm_get_record(const wm_msg *msg, wm_record *r) {
    (void)msg;
    *r = (wm_record){.id = "", .state = "", .enhanced = "", .text = ""};
    const field fields[] = {{1, F_TEXT, &r->id},       {2, F_INT, &r->first_seen}, {3, F_INT, &r->last_seen},
                            {4, F_INT, &r->attempts},  {5, F_TEXT, &r->state},     {6, F_INT32, &r->code},
                            {7, F_TEXT, &r->enhanced}, {8, F_TEXT, &r->text},      {9, F_INT, &r->notices},
                            {10, F_INT, &r->last_notice}};
    return get_decoded(fetch_record, "record", fields, COUNT(fields), NULL, NULL);
}

static bool props_problem(uint8_t tag, reader payload, void *ctx) {
    wm_properties *p = ctx;
    if (tag != 17)
        return true;
    const char **list = arena_alloc(sizeof(char *) * (p->nproblems + 1));
    memcpy(list, p->problems, sizeof(char *) * p->nproblems);
    list[p->nproblems++] = rd_text(payload);
    p->problems = list;
    return true;
}

bool wm_get_properties(const wm_msg *msg, wm_properties *p) {
    (void)msg;
    *p = (wm_properties){.message_id = "", .from = "", .from_name = "", .sender = "", .subject = "",
                         .content_type = "", .list_id = "", .auto_submitted = "", .precedence = ""};
    const field fields[] = {
        {1, F_TEXT, &p->message_id},      {2, F_TEXT, &p->from},           {3, F_TEXT, &p->from_name},
        {4, F_TEXT, &p->sender},          {5, F_INT, &p->to_count},        {6, F_INT, &p->cc_count},
        {7, F_INT, &p->date},             {8, F_TEXT, &p->subject},        {9, F_TEXT, &p->content_type},
        {10, F_INT, &p->received_count},  {11, F_TEXT, &p->list_id},       {12, F_TEXT, &p->auto_submitted},
        {13, F_TEXT, &p->precedence},     {14, F_BOOL, &p->is_delivery_report},
        {15, F_INT, &p->header_count},    {16, F_INT, &p->header_bytes}};
    return get_decoded(fetch_props, "properties", fields, COUNT(fields), props_problem, p);
}

/* ---- config ---- */

typedef struct {
    const char *key;
    const char **values;
    size_t nvalues;
    bool read;
} config_entry;

struct wm_config {
    config_entry *entries;
    size_t n;
    char *errors; /* "; "-joined problems the getters met, or NULL */
};

/* config_fail records a problem; init's caller refuses to start with all
 * of them, one per line, so init can read its settings in a row. */
static void config_fail(wm_config *cfg, const char *key, const char *what) {
    const char *msg = wm_format("config key \"%s\": %s", key, what);
    cfg->errors = (char *)(cfg->errors ? wm_format("%s\n%s", cfg->errors, msg) : msg);
}

/* lookup finds key; a key given twice keeps its last value, as a later
 * assignment would. */
static config_entry *lookup(wm_config *cfg, const char *key) {
    for (size_t i = cfg->n; i-- > 0;)
        if (strcmp(cfg->entries[i].key, key) == 0) {
            cfg->entries[i].read = true;
            return &cfg->entries[i];
        }
    return NULL;
}

bool wm_config_has(wm_config *cfg, const char *key) { return lookup(cfg, key) != NULL; }

const char *const *wm_config_list(wm_config *cfg, const char *key, size_t *n) {
    config_entry *e = lookup(cfg, key);
    *n = e ? e->nvalues : 0;
    return e ? e->values : NULL;
}

/* single returns the one value of a scalar key; a list is reported. */
static const char *single(wm_config *cfg, const char *key) {
    config_entry *e = lookup(cfg, key);
    if (e == NULL)
        return NULL;
    if (e->nvalues != 1) {
        config_fail(cfg, key, wm_format("want a single value, got a list of %zu", e->nvalues));
        return NULL;
    }
    return e->values[0];
}

const char *wm_config_string(wm_config *cfg, const char *key, const char *def) {
    const char *v = single(cfg, key);
    return v ? v : def;
}

int64_t wm_config_int(wm_config *cfg, const char *key, int64_t def) {
    const char *v = single(cfg, key);
    if (v == NULL)
        return def;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v == 0 || *end != 0 || errno != 0) {
        config_fail(cfg, key, wm_format("\"%s\" is not an integer", v));
        return def;
    }
    return (int64_t)n;
}

bool wm_config_bool(wm_config *cfg, const char *key, bool def) {
    const char *v = single(cfg, key);
    if (v == NULL)
        return def;
    if (strcmp(v, "true") == 0)
        return true;
    if (strcmp(v, "false") == 0)
        return false;
    config_fail(cfg, key, wm_format("\"%s\" is not true or false", v));
    return def;
}

static bool decode_config(reader r, wm_config *cfg) {
    uint8_t tag;
    reader payload;
    size_t n = 0;
    for (reader c = r; c.n > 0; n += tag == CONFIG_ENTRY)
        if (!rd_field(&c, &tag, &payload))
            return false;
    cfg->entries = arena_alloc(sizeof(config_entry) * (n + 1));
    while (r.n > 0) {
        if (!rd_field(&r, &tag, &payload))
            return false;
        if (tag != CONFIG_ENTRY)
            continue;
        config_entry *e = &cfg->entries[cfg->n++];
        e->read = false;
        if (!rd_str(&payload, &e->key) || !rd_str_list(&payload, &e->values, &e->nvalues))
            return false;
    }
    return true;
}

/* warn_unread logs keys init never asked for: usually typos. A warning, not
 * a refusal: an old key left in a config file must not stop the server. */
static void warn_unread(const wm_config *cfg) {
    const char *unread = NULL;
    for (size_t i = 0; i < cfg->n; i++)
        if (!cfg->entries[i].read)
            unread = unread ? wm_format("%s, %s", unread, cfg->entries[i].key) : cfg->entries[i].key;
    if (unread)
        wm_log(WM_LOG_WARN, "config keys not used by the plugin (typo?): %s", unread);
}

/* ---- the exports (§1) ---- */

#define WM_EXPORT(name) __attribute__((export_name(name)))

static uint8_t *exchange;
static size_t exchange_cap;

WM_EXPORT("wasmilter_abi_version") int32_t wasmilter_abi_version(void) { return WASMILTER_ABI_VERSION; }

/* The host writes events and the config here. Growing frees the old buffer
 * first: its contents need not survive (§2). */
WM_EXPORT("wasmilter_buffer") int32_t wasmilter_buffer(int32_t size) {
    if (size < 1)
        size = 1;
    if ((size_t)size > exchange_cap) {
        free(exchange);
        exchange = malloc((size_t)size);
        exchange_cap = exchange ? (size_t)size : 0;
    }
    return (int32_t)(uintptr_t)exchange;
}

static reader input(int32_t len) {
    if (len < 0 || (size_t)len > exchange_cap)
        fatal("wasmilter C SDK: the host passed a length larger than the exchange buffer");
    return (reader){exchange, (size_t)len};
}

static wm_handler handler_for(wm_hook hook) {
    const wm_plugin *p = plugin();
    switch (hook) {
    case WM_HOOK_CONNECT: return p->connect;
    case WM_HOOK_HELO: return p->helo;
    case WM_HOOK_MAIL: return p->mail;
    case WM_HOOK_RCPT: return p->rcpt;
    case WM_HOOK_HEADERS: return p->headers;
    case WM_HOOK_MESSAGE: return p->message;
    case WM_HOOK_DELAY: return p->delay;
    }
    return NULL;
}

static uint32_t handled_hooks(void) {
    uint32_t set = 0;
    for (int h = WM_HOOK_CONNECT; h <= WM_HOOK_DELAY; h++)
        if (handler_for((wm_hook)h))
            set |= 1u << h;
    return set;
}

/* init_error runs the plugin's init and returns why it refuses, or NULL. */
static const char *init_error(int32_t len) {
    if (handled_hooks() == 0)
        return "WASMILTER_PLUGIN defines no hook handler (set .connect, .helo, .mail, .rcpt, .headers, "
               ".message or .delay)";
    wm_config cfg = {0};
    if (!decode_config(input(len), &cfg))
        return "decoding the plugin config: malformed encoding";
    if (plugin()->init == NULL) {
        if (cfg.n > 0)
            wm_log(WM_LOG_WARN, "plugin has no init; its %zu config keys are ignored", cfg.n);
        return NULL;
    }
    const char *err = plugin()->init(&cfg);
    if (err != NULL)
        return err;
    if (cfg.errors != NULL)
        return cfg.errors;
    warn_unread(&cfg);
    return NULL;
}

/* Init runs once per instance; what it allocates (config strings) is kept. */
WM_EXPORT("wasmilter_init") int64_t wasmilter_init(int32_t len) {
    in_init = true;
    const char *err = init_error(len);
    in_init = false;
    out_len = 0;
    if (err != NULL) {
        put_string_field(INIT_ERROR, *err ? err : "init failed");
    } else {
        put_uint_field(INIT_HOOKS, handled_hooks());
    }
    return packed();
}

static int64_t run_hook(wm_hook hook, int32_t len) {
    wm_handler handle = handler_for(hook);
    if (handle == NULL)
        return 0; /* the host asked anyway: no objection */
    arena_reset();
    out_len = 0;
    wm_msg msg;
    if (!decode_event(input(len), &msg))
        fatal(wm_format("wasmilter C SDK: malformed event at hook %d", (int)hook));
    msg.hook = hook; /* the export called is what decides, whatever the event says */
    put_verdict(handle(&msg));
    return packed();
}

WM_EXPORT("wasmilter_on_connect") int64_t wasmilter_on_connect(int32_t n) { return run_hook(WM_HOOK_CONNECT, n); }
WM_EXPORT("wasmilter_on_helo") int64_t wasmilter_on_helo(int32_t n) { return run_hook(WM_HOOK_HELO, n); }
WM_EXPORT("wasmilter_on_mail") int64_t wasmilter_on_mail(int32_t n) { return run_hook(WM_HOOK_MAIL, n); }
WM_EXPORT("wasmilter_on_rcpt") int64_t wasmilter_on_rcpt(int32_t n) { return run_hook(WM_HOOK_RCPT, n); }
WM_EXPORT("wasmilter_on_headers") int64_t wasmilter_on_headers(int32_t n) { return run_hook(WM_HOOK_HEADERS, n); }
WM_EXPORT("wasmilter_on_message") int64_t wasmilter_on_message(int32_t n) { return run_hook(WM_HOOK_MESSAGE, n); }
WM_EXPORT("wasmilter_on_delay") int64_t wasmilter_on_delay(int32_t n) { return run_hook(WM_HOOK_DELAY, n); }
