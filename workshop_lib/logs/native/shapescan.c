/* shapescan: the per-line part of workshop_lib.logs.fastscan in C (no dependencies; loaded with ctypes).
 *
 * A line's shape is the line with every ASCII digit replaced by '0' (shapes.NORM). For each line of a block,
 * ss_scan gives its shape id (sid: equal ids <=> byte-equal shapes, checked byte for byte, never by hash alone; -1 for
 * a line longer than long_line, which Python classifies each time) and its value id (vid: what Python decided for
 * that shape with ss_set; -1 when Python must look at the line itself). ss_tally counts the value ids of a block and
 * ss_select lists the lines whose value id Python wants to visit. Memory: the shape table (Python clears it when it
 * holds more than CACHE_MAX shapes) and Python's arrays. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t h;
    uint64_t off;
    uint32_t len;
    int32_t sid; /* -1: empty */
} slot_t;

typedef struct {
    slot_t *slots;
    uint64_t cap; /* power of two */
    int32_t nsid;
    int32_t *sid2vid;
    uint64_t vcap;
    unsigned char *arena;
    uint64_t used, acap;
    unsigned char *scratch;
    uint32_t long_line;
} ss_t;

#define ONES 0x0101010101010101ULL

/* every byte '0'..'9' of x becomes '0'; every other byte (including >= 0x80) is kept */
static inline uint64_t norm8(uint64_t x) {
    uint64_t t = x ^ (0x30 * ONES);
    uint64_t m = ((t & (0x7F * ONES)) + (0x76 * ONES)) | t; /* high bit clear <=> the byte was a digit */
    uint64_t d = (~m & (0x80 * ONES)) >> 7;
    uint64_t dm = d * 0xFF;
    return (x & ~dm) | ((0x30 * ONES) & dm);
}

static inline uint64_t mix(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

static int alloc_slots(ss_t *s, uint64_t cap) {
    slot_t *sl = malloc(cap * sizeof(slot_t));
    if (!sl) return -1;
    for (uint64_t i = 0; i < cap; i++) sl[i].sid = -1;
    s->slots = sl;
    s->cap = cap;
    return 0;
}

ss_t *ss_new(uint32_t long_line) {
    ss_t *s = calloc(1, sizeof(ss_t));
    if (!s) return NULL;
    s->long_line = long_line;
    s->scratch = malloc((size_t)long_line + 16);
    s->acap = 1 << 20;
    s->arena = malloc(s->acap);
    s->vcap = 1 << 12;
    s->sid2vid = malloc(s->vcap * sizeof(int32_t));
    if (!s->scratch || !s->arena || !s->sid2vid || alloc_slots(s, 1 << 12)) {
        free(s->scratch); free(s->arena); free(s->sid2vid); free(s->slots); free(s);
        return NULL;
    }
    return s;
}

void ss_free(ss_t *s) {
    if (!s) return;
    free(s->slots); free(s->sid2vid); free(s->arena); free(s->scratch); free(s);
}

/* forget every shape (and give most memory back) */
void ss_clear(ss_t *s) {
    free(s->slots);
    s->slots = NULL;
    alloc_slots(s, 1 << 12);
    s->nsid = 0;
    s->used = 0;
    if (s->acap > (1 << 20)) {
        free(s->arena);
        s->acap = 1 << 20;
        s->arena = malloc(s->acap);
    }
}

int32_t ss_count(const ss_t *s) { return s->nsid; }

int ss_set(ss_t *s, int32_t sid, int32_t vid) {
    if (sid < 0 || sid >= s->nsid) return -1;
    s->sid2vid[sid] = vid;
    return 0;
}

static int grow(ss_t *s) {
    uint64_t oldcap = s->cap;
    slot_t *old = s->slots;
    if (alloc_slots(s, oldcap * 2)) { s->slots = old; s->cap = oldcap; return -1; }
    uint64_t mask = s->cap - 1;
    for (uint64_t i = 0; i < oldcap; i++) {
        if (old[i].sid < 0) continue;
        uint64_t j = old[i].h & mask;
        while (s->slots[j].sid >= 0) j = (j + 1) & mask;
        s->slots[j] = old[i];
    }
    free(old);
    return 0;
}

/* the shape id of one line (len <= long_line), inserting a new shape; -2 when out of memory */
static int32_t shape_id(ss_t *s, const unsigned char *p, uint32_t len) {
    unsigned char *sc = s->scratch;
    uint64_t h = 0x84222325CBF29CE4ULL ^ len;
    uint32_t k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t x;
        memcpy(&x, p + k, 8);
        uint64_t w = norm8(x);
        memcpy(sc + k, &w, 8);
        h = mix(h, w);
    }
    if (k < len) {
        uint64_t x = 0;
        memcpy(&x, p + k, len - k);
        uint64_t w = norm8(x);
        memcpy(sc + k, &w, len - k);
        h = mix(h, w);
    }
    uint64_t mask = s->cap - 1;
    uint64_t j = h & mask;
    for (;;) {
        slot_t *sl = &s->slots[j];
        if (sl->sid < 0) break;
        if (sl->h == h && sl->len == len && memcmp(s->arena + sl->off, sc, len) == 0) return sl->sid;
        j = (j + 1) & mask;
    }
    /* new shape */
    if (s->used + len > s->acap) {
        uint64_t ncap = s->acap * 2;
        while (ncap < s->used + len) ncap *= 2;
        unsigned char *a = realloc(s->arena, ncap);
        if (!a) return -2;
        s->arena = a;
        s->acap = ncap;
    }
    if ((uint64_t)s->nsid >= s->vcap) {
        int32_t *v = realloc(s->sid2vid, s->vcap * 2 * sizeof(int32_t));
        if (!v) return -2;
        s->sid2vid = v;
        s->vcap *= 2;
    }
    memcpy(s->arena + s->used, sc, len);
    slot_t *sl = &s->slots[j];
    sl->h = h;
    sl->off = s->used;
    sl->len = len;
    sl->sid = s->nsid;
    s->used += len;
    s->sid2vid[s->nsid] = -1;
    int32_t sid = s->nsid++;
    if ((uint64_t)s->nsid * 2 > s->cap && grow(s)) return -2;
    return sid;
}

/* Split buf[0:len] (it ends with '\n') into lines: starts[i] is where line i begins (starts[n] = len, starts[n + 1]
 * = the longest line's length), sids[i] its shape id (-1: longer than long_line), vids[i] the value Python set for
 * that shape (-1: none). At most cap lines (starts holds cap + 2). Returns the number of lines n; -1 when cap is too
 * small, -2 when out of memory. */
int64_t ss_scan(ss_t *s, const unsigned char *buf, int64_t len, int64_t *starts, int32_t *sids, int32_t *vids,
                int64_t cap) {
    int64_t n = 0, pos = 0, longest = 0;
    while (pos < len) {
        const unsigned char *nl = memchr(buf + pos, '\n', (size_t)(len - pos));
        int64_t end = nl ? (int64_t)(nl - buf) : len;
        if (n >= cap) return -1;
        int64_t l = end - pos;
        if (l > longest) longest = l;
        int32_t sid = -1;
        if (l <= (int64_t)s->long_line) {
            sid = shape_id(s, buf + pos, (uint32_t)l);
            if (sid == -2) return -2;
        }
        starts[n] = pos;
        sids[n] = sid;
        vids[n] = sid >= 0 ? s->sid2vid[sid] : -1;
        n++;
        pos = end + 1;
    }
    starts[n] = len;
    starts[n + 1] = longest;
    return n;
}

/* The line indexes i (in order) with no value id yet (vids[i] < 0); returns how many. */
int64_t ss_misses(const int32_t *vids, int64_t n, int64_t *out) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (vids[i] < 0) out[k++] = i;
    return k;
}

/* For value ids in [0, nv): count[v] and last[v] (the last line index) over vids[0:n], and the distinct ids in order
 * of first appearance in touched[] (returns how many). count/last are set for touched ids only. */
int64_t ss_tally(const int32_t *vids, int64_t n, int32_t nv, int64_t *count, int64_t *last, int32_t *touched) {
    int64_t t = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t v = vids[i];
        if (v < 0 || v >= nv) return -1 - i;
        if (count[v] == 0) touched[t++] = v;
        count[v]++;
        last[v] = i;
    }
    return t;
}

/* The line indexes i (in order) whose value id has flag[vids[i]] != 0; returns how many. */
int64_t ss_select(const int32_t *vids, int64_t n, const unsigned char *flag, int64_t *out) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (flag[vids[i]]) out[k++] = i;
    return k;
}
