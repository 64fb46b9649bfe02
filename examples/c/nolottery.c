/*
 * nolottery — an example wasmilter plugin written with the C SDK (sdk/c).
 *
 * At the end of the headers:
 *   - a message whose Subject contains the configured word (compared
 *     without regard to case) is rejected with 550 5.7.1;
 *   - any other message gets "X-Checked-By: nolottery at <host>", where
 *     <host> is the MTA's macro j (its host name), or just "nolottery"
 *     when the MTA did not send it.
 *
 * Config ([plugins.config]):
 *     word = "lottery"   # the default; an empty word refuses to start
 *
 * Build (from the repository root):
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-all \
 *         -I sdk/c -o nolottery.wasm examples/c/nolottery.c sdk/c/wasmilter.c
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "wasmilter.h"

/* Set once per instance by configure; the handler only reads it. */
static const char *word;

static const char *configure(wm_config *cfg) {
    word = wm_config_string(cfg, "word", "lottery");
    if (*word == 0)
        return "config key \"word\" must not be empty";
    return NULL;
}

/* contains_fold reports whether needle occurs in haystack, ignoring ASCII case. */
static bool contains_fold(const char *haystack, const char *needle) {
    size_t n = strlen(needle);
    for (; *haystack; haystack++) {
        size_t i = 0;
        while (i < n && haystack[i] && tolower((unsigned char)haystack[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static wm_verdict on_headers(wm_msg *msg) {
    const char *subject = wm_header_get(msg, "Subject");
    if (subject != NULL && contains_fold(subject, word)) {
        wm_log(WM_LOG_INFO, "rejecting message %s: subject contains \"%s\"", msg->queue_id, word);
        return wm_reject(550, "5.7.1", "We do not take part in lotteries");
    }
    const char *host = wm_macro(msg, "j");
    wm_add_header(msg, "X-Checked-By", host ? wm_format("nolottery at %s", host) : "nolottery");
    return wm_continue();
}

WASMILTER_PLUGIN(.init = configure, .headers = on_headers);
