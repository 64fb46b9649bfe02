/*
 * wasmilter.h — the C SDK for wasmilter plugins (plugin ABI v1, sdk/ABI.md).
 *
 * A whole plugin:
 *
 *     #include <string.h>
 *     #include "wasmilter.h"
 *
 *     static const char *word;
 *
 *     static const char *configure(wm_config *cfg) {
 *         word = wm_config_string(cfg, "word", "lottery");
 *         return NULL;                        // or an error text: refuse to start
 *     }
 *
 *     static wm_verdict on_headers(wm_msg *msg) {
 *         const char *subject = wm_header_get(msg, "Subject");
 *         if (subject && strstr(subject, word))
 *             return wm_reject(550, "5.7.1", "We do not take part in lotteries");
 *         wm_add_header(msg, "X-Checked-By", "nolottery");
 *         return wm_continue();
 *     }
 *
 *     WASMILTER_PLUGIN(.init = configure, .headers = on_headers);
 *
 * Build it as a WASI reactor, together with wasmilter.c:
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-all \
 *         -I sdk/c -o plugin.wasm plugin.c sdk/c/wasmilter.c
 *
 * What the SDK does: wasmilter.c exports every symbol of the ABI
 * (wasmilter_abi_version, wasmilter_buffer, wasmilter_init and all hook
 * exports) and reports in its init answer which hooks have a handler, so the
 * host asks the MTA only for those stages. For each call it decodes the
 * event into a wm_msg, runs the handler and encodes the verdict together
 * with the actions the handler queued (wm_add_header, ...).
 *
 * Lifetimes. Everything a handler receives or gets back from this SDK (the
 * wm_msg and its strings, wm_header_get, wm_macro, wm_format, wm_kv_get,
 * stamp, record and properties strings) lives in a per-call arena that is
 * freed when the hook returns: copy what you keep. Strings from the wm_config
 * getters live as long as the instance, so init may keep them in globals.
 * The SDK copies verdict texts and action arguments when you call it, so
 * stack buffers are fine there.
 *
 * State. The host runs a pool of instances and may replace any of them at
 * any time; two hooks of one message may reach different instances. Globals
 * are fine for configuration set in init, never for per-message state.
 *
 * Failures. A malformed event or an allocation failure logs an error through
 * the host and traps: the host applies the plugin's on_error policy. The SDK
 * never invents a verdict on the plugin's behalf.
 *
 * Strings are NUL-terminated; header values as the MTA sent them (no leading
 * space, continuation lines keep CR LF + whitespace), not necessarily UTF-8.
 */
#ifndef WASMILTER_H
#define WASMILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this SDK speaks (wasmilter_abi_version). */
#define WASMILTER_ABI_VERSION 1

/* Hooks: points of the SMTP transaction (sdk/ABI.md §1). */
typedef enum {
    WM_HOOK_CONNECT = 0, /* a client connected */
    WM_HOOK_HELO = 1,    /* HELO/EHLO */
    WM_HOOK_MAIL = 2,    /* MAIL FROM */
    WM_HOOK_RCPT = 3,    /* each RCPT TO; the last recipient is the current one */
    WM_HOOK_HEADERS = 4, /* end of headers */
    WM_HOOK_MESSAGE = 5, /* end of message: the last chance to change it */
    WM_HOOK_DELAY = 6,   /* the retry sweeper asks about a held message */
} wm_hook;

/* Verdict kinds (sdk/ABI.md §4). */
typedef enum {
    WM_CONTINUE = 0, /* no objection; later plugins run */
    WM_ACCEPT = 1,   /* accept; no later plugin is asked */
    WM_REJECT = 2,   /* refuse permanently (5xx); at rcpt, only this recipient */
    WM_TEMPFAIL = 3, /* refuse temporarily (4xx) */
    WM_DISCARD = 4,  /* accept and silently drop */
} wm_verdict_kind;

/* What a handler returns. Build it with wm_continue(), wm_reject(), ... */
typedef struct {
    wm_verdict_kind kind;
    int code;             /* SMTP reply code, 0 for the MTA's default */
    const char *enhanced; /* RFC 3463 code such as "5.7.1", or NULL */
    const char *text;     /* reply text, one line, or NULL */
} wm_verdict;

/* Log levels of wm_log. */
typedef enum { WM_LOG_DEBUG = 0, WM_LOG_INFO = 1, WM_LOG_WARN = 2, WM_LOG_ERROR = 3 } wm_log_level;

/* One header field in message order. */
typedef struct {
    const char *name;
    const char *value; /* value_len bytes plus a NUL */
    size_t value_len;
} wm_header;

/* One envelope recipient with its ESMTP arguments. */
typedef struct {
    const char *addr;
    const char **args;
    size_t nargs;
} wm_rcpt;

/* What a handler sees: everything known about the connection and the
 * message at this hook. Absent strings are "" (never NULL). Valid during
 * the call only. */
typedef struct wm_msg {
    wm_hook hook;
    int64_t now;             /* host clock, Unix nanoseconds: decide by this */
    const char *client_host; /* reverse DNS name as the MTA reports it, or "[ip]" */
    const char *client_addr; /* IP address, or socket path for a local client */
    int client_port;         /* 0 when unknown */
    const char *family;      /* "inet", "inet6", "unix", "unknown" or "" */
    const char *helo;
    const char *queue_id; /* the MTA's queue ID once known */
    const char *from;     /* envelope sender without <>; "" is also the null sender */
    const char **from_args;
    size_t nfrom_args;
    const wm_rcpt *rcpts; /* at the rcpt hook, the last one is the current one */
    size_t nrcpts;
    const wm_header *headers; /* empty before the headers hook */
    size_t nheaders;
} wm_msg;

/* The plugin's [plugins.config] table, flattened to dotted keys. */
typedef struct wm_config wm_config;

/* A handler decides about the message at one hook and may queue actions. */
typedef wm_verdict (*wm_handler)(wm_msg *msg);

/* What a plugin defines with WASMILTER_PLUGIN. Hooks left NULL are not
 * asked for. init returns NULL to start, or the text of the reason it
 * refuses to (a literal, a global, or wm_format's result). */
typedef struct {
    const char *(*init)(wm_config *cfg);
    wm_handler connect, helo, mail, rcpt, headers, message, delay;
} wm_plugin;

/* WASMILTER_PLUGIN(.init = f, .headers = g, ...) defines the plugin: put it
 * once in one file, at file scope. */
#define WASMILTER_PLUGIN(...) const wm_plugin wasmilter_plugin = {__VA_ARGS__}
extern const wm_plugin wasmilter_plugin;

/* ---- verdicts ---- */

wm_verdict wm_continue(void);
wm_verdict wm_accept(void);
wm_verdict wm_discard(void);
/* code 5xx, enhanced "5.x.y" or NULL, text or NULL; code 0 = MTA default */
wm_verdict wm_reject(int code, const char *enhanced, const char *text);
/* code 4xx, enhanced "4.x.y" or NULL, text or NULL; code 0 = MTA default */
wm_verdict wm_tempfail(int code, const char *enhanced, const char *text);

/* ---- reading the message ---- */

/* The value of the first header called name (case-insensitive), or NULL. */
const char *wm_header_get(const wm_msg *msg, const char *name);
/* The value of the n-th (1-based) header called name, or NULL; n is the
 * occurrence number wm_change_header and wm_delete_header take. */
const char *wm_header_nth(const wm_msg *msg, const char *name, size_t n);
/* How many headers are called name. */
size_t wm_header_count(const wm_msg *msg, const char *name);
/* The recipient being decided about at the rcpt hook (the last one), or NULL. */
const wm_rcpt *wm_current_rcpt(const wm_msg *msg);

/* ---- actions (queued; they go out with the verdict) ---- */

void wm_add_header(wm_msg *msg, const char *name, const char *value);
void wm_insert_header(wm_msg *msg, size_t index, const char *name, const char *value); /* 0 = first */
void wm_change_header(wm_msg *msg, const char *name, size_t occurrence, const char *value);
void wm_delete_header(wm_msg *msg, const char *name, size_t occurrence);
void wm_quarantine(wm_msg *msg, const char *reason);
/* args: nargs ESMTP arguments, may be NULL when nargs is 0 */
void wm_change_from(wm_msg *msg, const char *addr, const char *const *args, size_t nargs);
void wm_add_rcpt(wm_msg *msg, const char *addr, const char *const *args, size_t nargs);
void wm_del_rcpt(wm_msg *msg, const char *addr);
void wm_notify(wm_msg *msg, const char *text); /* delay hook only */
void wm_expire(wm_msg *msg, const char *text); /* delay hook only; text may be "" */

/* ---- host functions ---- */

/* Writes a line to the server log, attributed to the plugin. */
void wm_log(wm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The host clock in Unix nanoseconds; in a handler prefer msg->now. */
int64_t wm_now(void);
/* An MTA macro ("i", "j", "{auth_authen}"), or NULL when undefined. */
const char *wm_macro(const wm_msg *msg, const char *name);

/* The message's stamp (sdk/ABI.md §3). */
typedef enum { WM_STAMP_NEW = 0, WM_STAMP_CARRIED = 1, WM_STAMP_FORGED = 2 } wm_stamp_state;
typedef struct {
    const char *id;
    int64_t first_seen; /* Unix seconds */
    const char *header_name;
    const char *header_value;
    wm_stamp_state state;
    const uint32_t *invalid; /* 1-based occurrences of invalid stamp headers */
    size_t ninvalid;
} wm_stamp;
bool wm_get_stamp(const wm_msg *msg, wm_stamp *out);

/* The message's retry-ledger record; false when it was never deferred. */
typedef struct {
    const char *id;
    int64_t first_seen, last_seen; /* Unix seconds */
    int64_t attempts;              /* attempts before this one */
    const char *state;             /* "deferred", "released", "passed", "expired", "held" */
    int code;                      /* what the last deferral answered */
    const char *enhanced;
    const char *text;
    int64_t notices;     /* delay-policy steps done */
    int64_t last_notice; /* Unix seconds, 0 when none was sent */
} wm_record;
bool wm_get_record(const wm_msg *msg, wm_record *out);

/* The header properties the host parsed; false before end of header. */
typedef struct {
    const char *message_id, *from, *from_name, *sender;
    int64_t to_count, cc_count;
    int64_t date; /* Unix seconds, 0 when missing or unparsable */
    const char *subject, *content_type;
    int64_t received_count;
    const char *list_id, *auto_submitted, *precedence;
    bool is_delivery_report;
    int64_t header_count, header_bytes;
    const char **problems;
    size_t nproblems;
} wm_properties;
bool wm_get_properties(const wm_msg *msg, wm_properties *out);

/* The plugin's key/value store (shared by its instances; values may be
 * evicted early). wm_kv_get returns the value (NUL-terminated, its length in
 * *len if len is not NULL) or NULL. The others return 0, or -2 refused.
 * ttl_ms <= 0: the host's default lifetime. */
const char *wm_kv_get(const char *key, size_t *len);
int wm_kv_set(const char *key, const void *value, size_t len, int64_t ttl_ms);
int wm_kv_incr(const char *key, int64_t delta, int64_t ttl_ms, int64_t *result);

/* ---- config (in init) ---- */

/* The value of key, or def when absent; a list is an error (reported). */
const char *wm_config_string(wm_config *cfg, const char *key, const char *def);
/* The integer value of key, or def when absent or malformed (reported). */
int64_t wm_config_int(wm_config *cfg, const char *key, int64_t def);
/* "true"/"false", or def when absent or malformed (reported). */
bool wm_config_bool(wm_config *cfg, const char *key, bool def);
/* Every value of key (a scalar gives one); *n is 0 and NULL returned when absent. */
const char *const *wm_config_list(wm_config *cfg, const char *key, size_t *n);
/* Whether key is set. */
bool wm_config_has(wm_config *cfg, const char *key);

/* ---- memory ---- */

/* printf into the per-call arena (or, in init, memory kept for the instance). */
const char *wm_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* size bytes from the same place. */
void *wm_alloc(size_t size);

#ifdef __cplusplus
}
#endif

#endif /* WASMILTER_H */
