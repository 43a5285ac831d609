/* shapescan: the per-line part of workshop_lib.logs.fastscan in C (no dependencies; loaded with ctypes).
 *
 * A line's shape is the line with every ASCII digit replaced by '0' (shapes.NORM) and, in a plain-ASCII line without
 * ESC, the hex digits of every id (a 0x address, a uuid: patterns.ID_RE) too (shapes.shape_of). For each line of a block,
 * ss_scan gives its shape id (sid: equal ids <=> byte-equal shapes, checked byte for byte, never by hash alone; -1 for
 * a line longer than long_line, which Python classifies each time) and its value id (vid: what Python decided for
 * that shape with ss_set; -1 when Python must look at the line itself). For a digit-sensitive shape (Python gave its
 * spans with ss_spans), the line's key is the shape id plus, per span, its bytes or (a span with a list of values: a
 * number a rule compares) which of those values it equals, or the whole line: a
 * second table gives that key an id (kid, byte-exact too) and the value Python set for it with ss_setk. ss_tally
 * counts the value ids of a block and ss_select lists the lines whose value id Python wants to visit. Memory: the two
 * tables (Python clears them when they hold more than CACHE_MAX entries) and Python's arrays. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t h;
    uint64_t off;
    uint32_t len;
    int32_t id; /* -1: empty */
} slot_t;

/* byte strings -> dense ids 0..n-1, each with a value (-1: none yet) */
typedef struct {
    slot_t *slots;
    uint64_t cap; /* power of two */
    int32_t n;
    int32_t *val;
    uint64_t vcap;
    unsigned char *arena;
    uint64_t used, acap;
} tab_t;

#define EXACT (-3) /* a shape's value: look the line up by its exact key */

typedef struct {
    tab_t shapes, keys;
    int32_t *spanoff; /* per shape with EXACT: index into spans (-1: the whole line) */
    int32_t *spans;   /* at spanoff: count, then count (start, end, values) triples; values: -1, or an offset in vals */
    uint64_t nspans, spcap;
    unsigned char *vals; /* value lists: (length byte, bytes)..., then a 0 length byte */
    uint64_t nvals, vcap;
    unsigned char *scratch, *keybuf;
    uint32_t long_line;
    uint64_t keycap;
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

static uint64_t hash_bytes(const unsigned char *p, uint32_t len) {
    uint64_t h = 0x84222325CBF29CE4ULL ^ len;
    uint32_t k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t x;
        memcpy(&x, p + k, 8);
        h = mix(h, x);
    }
    if (k < len) {
        uint64_t x = 0;
        memcpy(&x, p + k, len - k);
        h = mix(h, x);
    }
    return h;
}

static int tab_init(tab_t *t) {
    memset(t, 0, sizeof(*t));
    t->cap = 1 << 12;
    t->slots = malloc(t->cap * sizeof(slot_t));
    t->acap = 1 << 20;
    t->arena = malloc(t->acap);
    t->vcap = 1 << 12;
    t->val = malloc(t->vcap * sizeof(int32_t));
    if (!t->slots || !t->arena || !t->val) return -1;
    for (uint64_t i = 0; i < t->cap; i++) t->slots[i].id = -1;
    return 0;
}

static void tab_free(tab_t *t) {
    free(t->slots); free(t->arena); free(t->val);
    memset(t, 0, sizeof(*t));
}

static int tab_grow(tab_t *t) {
    uint64_t ncap = t->cap * 2, mask = ncap - 1;
    slot_t *sl = malloc(ncap * sizeof(slot_t));
    if (!sl) return -1;
    for (uint64_t i = 0; i < ncap; i++) sl[i].id = -1;
    for (uint64_t i = 0; i < t->cap; i++) {
        if (t->slots[i].id < 0) continue;
        uint64_t j = t->slots[i].h & mask;
        while (sl[j].id >= 0) j = (j + 1) & mask;
        sl[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = sl;
    t->cap = ncap;
    return 0;
}

/* the id of key[0:len] (hash h), added when new (value -1); -2 when out of memory */
static int32_t tab_id(tab_t *t, const unsigned char *key, uint32_t len, uint64_t h) {
    uint64_t mask = t->cap - 1, j = h & mask;
    for (;;) {
        slot_t *sl = &t->slots[j];
        if (sl->id < 0) break;
        if (sl->h == h && sl->len == len && memcmp(t->arena + sl->off, key, len) == 0) return sl->id;
        j = (j + 1) & mask;
    }
    if (t->used + len > t->acap) {
        uint64_t ncap = t->acap * 2;
        while (ncap < t->used + len) ncap *= 2;
        unsigned char *a = realloc(t->arena, ncap);
        if (!a) return -2;
        t->arena = a;
        t->acap = ncap;
    }
    if ((uint64_t)t->n >= t->vcap) {
        int32_t *v = realloc(t->val, t->vcap * 2 * sizeof(int32_t));
        if (!v) return -2;
        t->val = v;
        t->vcap *= 2;
    }
    memcpy(t->arena + t->used, key, len);
    slot_t *sl = &t->slots[j];
    sl->h = h;
    sl->off = t->used;
    sl->len = len;
    sl->id = t->n;
    t->used += len;
    t->val[t->n] = -1;
    int32_t id = t->n++;
    if ((uint64_t)t->n * 2 > t->cap && tab_grow(t)) return -2;
    return id;
}

ss_t *ss_new(uint32_t long_line) {
    ss_t *s = calloc(1, sizeof(ss_t));
    if (!s) return NULL;
    s->long_line = long_line;
    s->keycap = 4 * (uint64_t)long_line + 16;
    s->scratch = malloc((size_t)long_line + 16);
    s->keybuf = malloc(s->keycap);
    s->spcap = 1 << 12;
    s->spans = malloc(s->spcap * sizeof(int32_t));
    s->spanoff = malloc((1 << 12) * sizeof(int32_t));
    s->vcap = 1 << 12;
    s->vals = malloc(s->vcap);
    if (!s->vals || !s->scratch || !s->keybuf || !s->spans || !s->spanoff
        || tab_init(&s->shapes) || tab_init(&s->keys)) {
        free(s->scratch); free(s->keybuf); free(s->spans); free(s->spanoff); free(s->vals);
        tab_free(&s->shapes); tab_free(&s->keys); free(s);
        return NULL;
    }
    return s;
}

void ss_free(ss_t *s) {
    if (!s) return;
    tab_free(&s->shapes); tab_free(&s->keys);
    free(s->scratch); free(s->keybuf); free(s->spans); free(s->spanoff); free(s->vals); free(s);
}

/* forget every shape and key; returns -1 when out of memory */
int ss_clear(ss_t *s) {
    tab_free(&s->shapes);
    tab_free(&s->keys);
    s->nspans = 0;
    s->nvals = 0;
    return (tab_init(&s->shapes) || tab_init(&s->keys)) ? -1 : 0;
}

/* Forget the shapes that have no value yet (seen, but left to Python line by line: mostly lines with unique ids) and
 * every exact key; the others get new dense ids: map[old] = new id, or -1 when forgotten (map holds ss_count()
 * entries). Returns how many shapes remain, -2 when out of memory (then nothing changed). */
int64_t ss_prune(ss_t *s, int32_t *map) {
    tab_t old = s->shapes, nt;
    if (tab_init(&nt)) { tab_free(&nt); return -2; }
    int32_t *so = malloc((old.vcap > 0 ? old.vcap : 1) * sizeof(int32_t));
    if (!so) { tab_free(&nt); return -2; }
    for (int32_t i = 0; i < old.n; i++) map[i] = -1;
    for (uint64_t j = 0; j < old.cap; j++) {
        slot_t *sl = &old.slots[j];
        if (sl->id < 0 || old.val[sl->id] == -1) continue;
        int32_t id = tab_id(&nt, old.arena + sl->off, sl->len, sl->h);
        if (id < 0) { tab_free(&nt); free(so); return -2; }
        nt.val[id] = old.val[sl->id];
        so[id] = old.val[sl->id] == EXACT ? s->spanoff[sl->id] : -1;
        map[sl->id] = id;
    }
    tab_free(&s->shapes);
    s->shapes = nt;
    free(s->spanoff);
    s->spanoff = so;
    if (s->shapes.vcap > old.vcap) { /* spanoff must hold one entry per shape slot ss_spans may use */
        int32_t *g = realloc(s->spanoff, s->shapes.vcap * sizeof(int32_t));
        if (!g) return -2;
        s->spanoff = g;
    }
    tab_free(&s->keys);
    if (tab_init(&s->keys)) return -2;
    return s->shapes.n;
}

int32_t ss_count(const ss_t *s) { return s->shapes.n; }
int32_t ss_keys(const ss_t *s) { return s->keys.n; }
/* the bytes the two tables hold (shapes and exact keys): Python clears them past a cap (bounded memory) */
int64_t ss_bytes(const ss_t *s) { return (int64_t)(s->shapes.used + s->keys.used); }

/* the value of a shape */
int ss_set(ss_t *s, int32_t sid, int32_t vid) {
    if (sid < 0 || sid >= s->shapes.n || vid < 0) return -1;
    s->shapes.val[sid] = vid;
    return 0;
}

/* the value of an exact key */
int ss_setk(ss_t *s, int32_t kid, int32_t vid) {
    if (kid < 0 || kid >= s->keys.n || vid < 0) return -1;
    s->keys.val[kid] = vid;
    return 0;
}

/* a digit-sensitive shape: its lines are keyed by triples[0:3*count] ((start, end, values) within the shape's
 * length; values -1: the span's bytes, else an offset into blob[0:bloblen] where a list of values starts (length
 * byte, bytes, ..., a 0 byte): only which one the span equals counts), or by the whole line when count < 0 */
int ss_spans(ss_t *s, int32_t sid, const int32_t *triples, int32_t count, const unsigned char *blob, int32_t bloblen) {
    if (sid < 0 || sid >= s->shapes.n || count > (1 << 16) || bloblen < 0) return -1;
    int32_t *so = realloc(s->spanoff, s->shapes.vcap * sizeof(int32_t));
    if (!so) return -2;
    s->spanoff = so;
    if (count < 0) {
        so[sid] = -1;
    } else {
        for (int32_t i = 0; i < count; i++) {
            int32_t v = triples[3 * i + 2];
            if (v >= bloblen) return -1;
            if (v >= 0) { /* the list must end inside the blob */
                int32_t q = v;
                while (q < bloblen && blob[q]) q += 1 + blob[q];
                if (q >= bloblen) return -1;
            }
        }
        uint64_t need = s->nspans + 1 + 3 * (uint64_t)count;
        if (need > s->spcap) {
            uint64_t ncap = s->spcap;
            while (ncap < need) ncap *= 2;
            int32_t *sp = realloc(s->spans, ncap * sizeof(int32_t));
            if (!sp) return -2;
            s->spans = sp;
            s->spcap = ncap;
        }
        if (s->nvals + (uint64_t)bloblen > s->vcap) {
            uint64_t ncap = s->vcap;
            while (ncap < s->nvals + (uint64_t)bloblen) ncap *= 2;
            unsigned char *vb = realloc(s->vals, ncap);
            if (!vb) return -2;
            s->vals = vb;
            s->vcap = ncap;
        }
        uint64_t base = s->nvals;
        if (bloblen) memcpy(s->vals + base, blob, (size_t)bloblen);
        s->nvals += (uint64_t)bloblen;
        so[sid] = (int32_t)s->nspans;
        s->spans[s->nspans++] = count;
        for (int32_t i = 0; i < count; i++) {
            s->spans[s->nspans++] = triples[3 * i];
            s->spans[s->nspans++] = triples[3 * i + 1];
            int32_t v = triples[3 * i + 2];
            s->spans[s->nspans++] = v < 0 ? -1 : (int32_t)(base + (uint64_t)v);
        }
    }
    s->shapes.val[sid] = EXACT;
    return 0;
}

static inline int is_word(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') || c == '_';
}

static inline int is_hex0(unsigned char c) { return c == '0' || (c >= 'a' && c <= 'f'); } /* digits are '0' here */

/* A candidate at sc[i] ('x' or '-'): when it starts an id (patterns.ID_RE: 0x and hex digits, or a uuid whose first
 * dash is at i; no word character right before or after), its hex digits become '0'. Returns the index to go on from
 * (past the id, or past a 0x run that is no id: no id can start inside one). sc is p digit-normalised. */
static uint32_t mask_id(const unsigned char *p, unsigned char *sc, uint32_t len, uint32_t i, int *changed) {
    if (sc[i] == 'x') {
        if (i < 1 || p[i - 1] != '0' || (i >= 2 && is_word(sc[i - 2])) || i + 1 >= len || !is_hex0(sc[i + 1]))
            return i + 1;
        uint32_t j = i + 1;
        while (j < len && is_hex0(sc[j])) j++;
        if (j == len || !is_word(sc[j])) {
            memset(sc + i + 1, '0', j - i - 1);
            *changed = 1;
        }
        return j;
    }
    /* a uuid: 8-4-4-4-12 */
    if (i < 8 || i + 28 > len || !is_hex0(sc[i - 1]) || !is_hex0(sc[i + 1]) || sc[i + 5] != '-' || sc[i + 10] != '-'
        || sc[i + 15] != '-')
        return i + 1;
    uint32_t a = i - 8, b = i + 28;
    if ((a > 0 && is_word(sc[a - 1])) || (b < len && is_word(sc[b]))) return i + 1;
    for (uint32_t q = a; q < b; q++) {
        uint32_t o = q - a;
        if (o == 8 || o == 13 || o == 18 || o == 23) continue;
        if (!is_hex0(sc[q])) return i + 1;
    }
    for (uint32_t q = a; q < b; q++)
        if (sc[q] != '-') sc[q] = '0';
    *changed = 1;
    return b;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#define CHUNK 16
#else
#define CHUNK 8
#endif

/* the hash of a shape sc[0:len], as shape_id computes it on the way (16-byte chunks in two independent multiply
 * chains with SSE2, then 8 bytes, then the rest; it only picks the slot: the table compares the bytes) */
static uint64_t shape_hash(const unsigned char *sc, uint32_t len) {
    uint64_t h = 0x84222325CBF29CE4ULL ^ len, g = 0x9E3779B97F4A7C15ULL;
    uint32_t k = 0;
    for (; CHUNK == 16 && k + 16 <= len; k += 16) {
        uint64_t w0, w1;
        memcpy(&w0, sc + k, 8);
        memcpy(&w1, sc + k + 8, 8);
        h = (h ^ w0) * 0x9E3779B97F4A7C15ULL;
        g = (g ^ w1) * 0xC2B2AE3D27D4EB4FULL;
    }
    for (; k + 8 <= len; k += 8) {
        uint64_t w;
        memcpy(&w, sc + k, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    }
    if (k < len) {
        uint64_t w = 0;
        memcpy(&w, sc + k, len - k);
        g = (g ^ w) * 0xC2B2AE3D27D4EB4FULL;
    }
    h ^= g + (h >> 31);
    return h ^ (h >> 29);
}

/* the shape id of one line (len <= long_line; nl: p[len] is its '\n', else nothing past p[len - 1] is read),
 * adding a new shape; -2 when out of memory. The
 * line is digit-normalised into scratch and hashed on the way, noting whether it may hold an id (a "0x", or two '-'
 * 5 bytes apart, the first followed by a hex digit and with room for a uuid after it) and whether it is plain ASCII without ESC; only then are its
 * ids looked for and masked (shapes.shape_of), and the shape hashed again when that changed it */
static int32_t shape_id(ss_t *s, const unsigned char *p, uint32_t len, int nl) {
    unsigned char *sc = s->scratch;
    uint32_t k = 0, bad = 0, maybe = 0;
    uint64_t h = 0x84222325CBF29CE4ULL ^ len, g = 0x9E3779B97F4A7C15ULL;
#if defined(__SSE2__)
    const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9), ex = _mm_set1_epi8('x'),
                  dash = _mm_set1_epi8('-'), lowa = _mm_set1_epi8('a'), five = _mm_set1_epi8(5);
    for (; k + 16 <= len; k += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(p + k));
        __m128i t = _mm_sub_epi8(x, zero);
        __m128i dig = _mm_cmpeq_epi8(_mm_min_epu8(t, nine), t); /* 0xFF where '0' <= byte <= '9' */
        __m128i w = _mm_or_si128(_mm_andnot_si128(dig, x), _mm_and_si128(dig, zero));
        _mm_storeu_si128((__m128i *)(sc + k), w);
        uint64_t w0, w1;
        memcpy(&w0, sc + k, 8);
        memcpy(&w1, sc + k + 8, 8);
        h = (h ^ w0) * 0x9E3779B97F4A7C15ULL;
        g = (g ^ w1) * 0xC2B2AE3D27D4EB4FULL;
        if (k + 16 == len && !nl) { /* the last chunk of a line without '\n': look at every byte below */
            maybe = 1;
            continue;
        }
        __m128i y = _mm_loadu_si128((const __m128i *)(p + k + 1)); /* p[k + 16]: at most the line's '\n' */
        __m128i m = _mm_and_si128(_mm_cmpeq_epi8(x, zero), _mm_cmpeq_epi8(y, ex));
        if (k + 28 <= len) { /* a uuid's first dash has 27 bytes after it in the line: p[k + 20] is too */
            __m128i ty = _mm_sub_epi8(y, zero), ly = _mm_sub_epi8(y, lowa); /* a hex digit after the dash */
            __m128i hy = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(ty, nine), ty), _mm_cmpeq_epi8(_mm_min_epu8(ly, five), ly));
            m = _mm_or_si128(m, _mm_and_si128(hy, _mm_and_si128(_mm_cmpeq_epi8(x, dash),
                                              _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + k + 5)), dash))));
        }
        maybe |= (uint32_t)_mm_movemask_epi8(m);
    }
    if (k < len && len >= 16 && !nl) {
        maybe = 1;
    } else if (k < len && len >= 16) { /* the last bytes: a "0x" among the line's last 16 (no uuid can start there) */
        __m128i x = _mm_loadu_si128((const __m128i *)(p + len - 16));
        __m128i y = _mm_loadu_si128((const __m128i *)(p + len - 15)); /* up to the '\n' */
        maybe |= (uint32_t)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(x, zero), _mm_cmpeq_epi8(y, ex)));
    }
#endif
    uint32_t head = k; /* bytes before this went through the 16-byte path */
    for (; k + 8 <= len; k += 8) {
        uint64_t x;
        memcpy(&x, p + k, 8);
        uint64_t w = norm8(x);
        memcpy(sc + k, &w, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    }
    if (k < len) {
        uint64_t x = 0;
        memcpy(&x, p + k, len - k);
        uint64_t w = norm8(x);
        memcpy(sc + k, &w, len - k);
        g = (g ^ w) * 0xC2B2AE3D27D4EB4FULL;
    }
#if defined(__SSE2__)
    if (len < 16) /* a short line, byte by byte */
#endif
        for (uint32_t q = head; q < len; q++) {
            unsigned char c = p[q];
            maybe |= (c == '0' && q + 1 < len && p[q + 1] == 'x') || (c == '-' && q + 28 <= len && p[q + 5] == '-'
                                                        && ((p[q + 1] >= '0' && p[q + 1] <= '9') || (p[q + 1] >= 'a' && p[q + 1] <= 'f')));
        }
    int changed = 0;
    if (maybe)
        for (uint32_t q = 0; q < len; q++) bad |= (p[q] >= 0x80 || p[q] == 0x1b); /* only plain ASCII without ESC */
    if (maybe && !bad)
        for (uint32_t i = 1; i < len;) /* an id starts no earlier than "0x" at 0 */
            i = (sc[i] == 'x' || sc[i] == '-') ? mask_id(p, sc, len, i, &changed) : i + 1;
    h ^= g + (h >> 31);
    h ^= h >> 29;
    uint64_t hv = changed ? shape_hash(sc, len) : h;
    return tab_id(&s->shapes, sc, len, hv);
}

/* the exact key id of a line of digit-sensitive shape sid; -1 when the key does not fit, -2 out of memory */
static int32_t key_id(ss_t *s, int32_t sid, const unsigned char *p, uint32_t len) {
    unsigned char *kb = s->keybuf;
    uint64_t kl = 4;
    memcpy(kb, &sid, 4);
    int32_t off = s->spanoff[sid];
    if (off < 0) {
        if (kl + len > s->keycap) return -1;
        memcpy(kb + kl, p, len);
        kl += len;
    } else {
        int32_t count = s->spans[off];
        const int32_t *pr = s->spans + off + 1;
        for (int32_t i = 0; i < count; i++) {
            int32_t a = pr[3 * i], b = pr[3 * i + 1], v = pr[3 * i + 2];
            if (a < 0) a = 0;
            if (b > (int32_t)len) b = (int32_t)len;
            if (b < a) b = a;
            if (v >= 0) { /* which of the values the span equals (255: none): one byte */
                const unsigned char *q = s->vals + v;
                unsigned char which = 255;
                for (unsigned char k = 0; *q && k < 255; k++, q += 1 + *q)
                    if (*q == (uint32_t)(b - a) && memcmp(q + 1, p + a, *q) == 0) { which = k; break; }
                if (kl + 1 > s->keycap) return -1;
                kb[kl++] = which;
                continue;
            }
            if (kl + (uint64_t)(b - a) + 4 > s->keycap) return -1;
            uint32_t w = (uint32_t)(b - a);
            memcpy(kb + kl, &w, 4); /* each span's length first: the concatenation is unambiguous */
            kl += 4;
            memcpy(kb + kl, p + a, (size_t)(b - a));
            kl += (uint64_t)(b - a);
        }
    }
    return tab_id(&s->keys, kb, (uint32_t)kl, hash_bytes(kb, (uint32_t)kl));
}

/* Split buf[0:len] (it ends with '\n') into lines: starts[i] is where line i begins (starts[n] = len, starts[n + 1]
 * = the longest line's length), sids[i] its shape id (-1: longer than long_line), kids[i] its exact key id (-1: not a
 * digit-sensitive shape, or no key), vids[i] the value Python set for its shape or key (-1: none). At most cap lines
 * (starts holds cap + 2): when there are more, starts[n] < len is where the rest begins. Returns the number of lines
 * n, or -2 when out of memory. */
int64_t ss_scan(ss_t *s, const unsigned char *buf, int64_t len, int64_t *starts, int32_t *sids, int32_t *kids,
                int32_t *vids, int64_t cap) {
    int64_t n = 0, pos = 0, longest = 0;
    while (pos < len) {
        const unsigned char *nl = memchr(buf + pos, '\n', (size_t)(len - pos));
        int64_t end = nl ? (int64_t)(nl - buf) : len;
        if (n >= cap) break;
        int64_t l = end - pos;
        if (l > longest) longest = l;
        int32_t sid = -1, kid = -1, vid = -1;
        if (l <= (int64_t)s->long_line) {
            sid = shape_id(s, buf + pos, (uint32_t)l, nl != NULL);
            if (sid == -2) return -2;
            vid = s->shapes.val[sid];
            if (vid == EXACT) {
                kid = key_id(s, sid, buf + pos, (uint32_t)l);
                if (kid == -2) return -2;
                vid = kid >= 0 ? s->keys.val[kid] : -1;
            }
        }
        starts[n] = pos;
        sids[n] = sid;
        kids[n] = kid;
        vids[n] = vid;
        n++;
        pos = end + 1;
    }
    starts[n] = pos < len ? pos : len;
    starts[n + 1] = longest;
    return n;
}

/* After Python set more values: from line index `from` on, give each line still without a value the value of its
 * shape or exact key if there is one now (computing its key when its shape became digit-sensitive), and list the
 * first maxout lines still without one in out[]. Returns how many (0: none left), -2 when out of memory. */
int64_t ss_refill(ss_t *s, const unsigned char *buf, const int64_t *starts, const int32_t *sids, int32_t *kids,
                  int32_t *vids, int64_t from, int64_t n, int64_t *out, int64_t maxout) {
    int64_t k = 0;
    for (int64_t i = from; i < n && k < maxout; i++) {
        if (vids[i] >= 0) continue;
        int32_t sid = sids[i];
        if (sid >= 0) {
            int32_t v = s->shapes.val[sid];
            if (v == EXACT) {
                int32_t kid = kids[i];
                if (kid < 0) {
                    kid = key_id(s, sid, buf + starts[i], (uint32_t)(starts[i + 1] - starts[i] - 1));
                    if (kid == -2) return -2;
                    kids[i] = kid;
                }
                v = kid >= 0 ? s->keys.val[kid] : -1;
            }
            vids[i] = v;
        }
        if (vids[i] < 0) out[k++] = i;
    }
    return k;
}

/* The line indexes i (in order) with no value id yet (vids[i] < 0); returns how many. */
int64_t ss_misses(const int32_t *vids, int64_t n, int64_t *out) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (vids[i] < 0) out[k++] = i;
    return k;
}

/* For value ids in [0, nv): count[v], first[v] and last[v] (the first and last line index) over vids[0:n], and the
 * distinct ids in order of first appearance in touched[] (returns how many; -1 - i when vids[i] is out of range).
 * count must be zeroed. */
int64_t ss_tally(const int32_t *vids, int64_t n, int32_t nv, int64_t *count, int64_t *first, int64_t *last,
                 int32_t *touched) {
    int64_t t = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t v = vids[i];
        if (v < 0 || v >= nv) return -1 - i;
        if (count[v] == 0) {
            touched[t++] = v;
            first[v] = i;
        }
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

/* Which of a fixed set of keys (the rules' substrings, at most 128, each at least 2 bytes) occur in a line: a
 * two-byte head table picks the few keys to compare at each position. */
typedef struct {
    unsigned char *blob; /* the keys' bytes */
    int32_t *off, *len, *next, n;
    int32_t head[65536]; /* first key starting with these two bytes, -1: none */
} ks_t;

/* keys: n of them, each a length byte then its bytes; NULL when a key is shorter than 2 bytes or n > 128 */
ks_t *ks_new(const unsigned char *keys, int32_t n) {
    if (n < 0 || n > 128) return NULL;
    ks_t *k = malloc(sizeof(ks_t));
    if (!k) return NULL;
    int32_t total = 0;
    for (int32_t i = 0, q = 0; i < n; i++) { total += keys[q]; q += 1 + keys[q]; }
    k->blob = malloc((size_t)total + 1);
    k->off = malloc(sizeof(int32_t) * (size_t)(n + 1));
    k->len = malloc(sizeof(int32_t) * (size_t)(n + 1));
    k->next = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!k->blob || !k->off || !k->len || !k->next) {
        free(k->blob); free(k->off); free(k->len); free(k->next); free(k);
        return NULL;
    }
    k->n = n;
    for (int32_t i = 0; i < 65536; i++) k->head[i] = -1;
    for (int32_t i = 0, q = 0, o = 0; i < n; i++) {
        int32_t l = keys[q];
        if (l < 2) {
            free(k->blob); free(k->off); free(k->len); free(k->next); free(k);
            return NULL;
        }
        memcpy(k->blob + o, keys + q + 1, (size_t)l);
        k->off[i] = o;
        k->len[i] = l;
        int32_t h = (keys[q + 1] << 8) | keys[q + 2];
        k->next[i] = k->head[h];
        k->head[h] = i;
        o += l;
        q += 1 + l;
    }
    return k;
}

void ks_free(ks_t *k) {
    if (!k) return;
    free(k->blob); free(k->off); free(k->len); free(k->next); free(k);
}

/* mask[0..1]: bit i set when key i occurs in text[0:len] */
void ks_find(const ks_t *k, const unsigned char *text, int64_t len, uint64_t *mask) {
    mask[0] = mask[1] = 0;
    for (int64_t p = 0; p + 1 < len; p++) {
        for (int32_t i = k->head[(text[p] << 8) | text[p + 1]]; i >= 0; i = k->next[i]) {
            int32_t l = k->len[i];
            if (l <= len - p && memcmp(k->blob + k->off[i], text + p, (size_t)l) == 0) mask[i >> 6] |= 1ULL << (i & 63);
        }
    }
}
