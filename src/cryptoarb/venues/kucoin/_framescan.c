/* A scanner for KuCoin's two hottest market-data frames: /market/ticker:all (~12,500 a second for the whole
 * market) and /spotMarket/level2Depth5/50 (100 levels each). Used by cryptoarb.venues.kucoin.codec.
 *
 *   scan(raw, venue, received_at, update_type), by the frame's head:
 *       ticker:all -> update_type(venue, subject, bids, asks, sequence, time, received_at)
 *       depth      -> update_type(venue, symbol, bids, asks, timestamp, timestamp, received_at)
 *       any other  -> None
 *
 * It returns None when the frame is not one it is sure of. None says nothing about the frame: the
 * caller then decodes it with msgspec, which decides, and raises on a malformed frame. So this scanner
 * only needs to be right about what it accepts, and it accepts little:
 *
 * - one compact JSON object (no whitespace between tokens), ASCII strings without escapes;
 * - top-level keys "topic", "type", "subject" (strings) and "data" (an object), each at most once;
 * - in "data", the keys read below at most once; any other key must hold a string, a number or null;
 * - numbers (quoted or not) as -?(0|[1-9][0-9]*)(.[0-9]+)?; prices and sizes non-negative, integers
 *   non-negative with at most 18 digits.
 *
 * What it builds is what codec.py builds from msgspec's parse (tests/kucoin/test_framescan.py holds the two
 * paths equal on random frames): floats rounded as float() rounds, a ticker side empty where its price or
 * size is null or zero, depth levels exactly as sent.
 *
 * Why by hand: msgspec parses a ticker frame in ~0.3-0.45 us, and the Python that turns its Struct into a
 * BookUpdate costs as much again; this does both in one pass in less than the parse alone. A depth push is
 * ~300 Python objects; msgspec's generic path spends ~100 ns per level, this one less
 * (benchmarks/ws_decode.py, benchmarks/README.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    const char *p;
    const char *end;
} Cursor;

typedef struct {
    const char *start; /* NULL: absent */
    Py_ssize_t len;
    int quoted;
    int is_null;
} Value;

/* name is a string literal: its length is known at compile time */
#define KEY_IS(k, n, name) ((n) == (Py_ssize_t)sizeof(name) - 1 && memcmp((k), (name), sizeof(name) - 1) == 0)

/* 10^0 .. 10^22: every one exact in a double */
static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int
expect(Cursor *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A string's body after its opening quote; fails on escapes, control characters and non-ASCII bytes. */
static int
read_string(Cursor *c, const char **start, Py_ssize_t *len)
{
    const char *s = c->p;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *start = s;
            *len = c->p - s;
            c->p++;
            return 1;
        }
        if (ch == '\\' || ch < 0x20 || ch >= 0x80) {
            return 0;
        }
        c->p++;
    }
    return 0;
}

/* The grammar of a number here: -?(0|[1-9][0-9]*)(.[0-9]+)? over [s, e); returns its end, or NULL. */
static const char *
scan_number(const char *s, const char *e)
{
    const char *q = s;
    if (q < e && *q == '-') {
        q++;
    }
    const char *int_start = q;
    while (q < e && *q >= '0' && *q <= '9') {
        q++;
    }
    if (q == int_start || (q - int_start > 1 && *int_start == '0')) {
        return NULL;
    }
    if (q < e && *q == '.') {
        const char *frac = ++q;
        while (q < e && *q >= '0' && *q <= '9') {
            q++;
        }
        if (q == frac) {
            return NULL;
        }
    }
    return q;
}

/* A string, a number or null; fails on objects, arrays, true and false. */
static int
read_value(Cursor *c, Value *v)
{
    if (c->p >= c->end) {
        return 0;
    }
    if (*c->p == '"') {
        c->p++;
        v->quoted = 1;
        v->is_null = 0;
        return read_string(c, &v->start, &v->len);
    }
    if (*c->p == 'n') {
        if (c->end - c->p < 4 || memcmp(c->p, "null", 4) != 0) {
            return 0;
        }
        v->start = c->p;
        v->len = 4;
        v->quoted = 0;
        v->is_null = 1;
        c->p += 4;
        return 1;
    }
    const char *q = scan_number(c->p, c->end);
    if (q == NULL) {
        return 0;
    }
    v->start = c->p;
    v->len = q - c->p;
    v->quoted = 0;
    v->is_null = 0;
    c->p = q;
    return 1;
}

/* Correctly rounded, as float() rounds: CPython's strtod, for the numbers the fast path leaves. */
static int
slow_double(const char *s, Py_ssize_t len, double *out)
{
    char buf[64];
    if (len >= (Py_ssize_t)sizeof(buf)) {
        return 0;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *stop = NULL;
    double d = PyOS_string_to_double(buf, &stop, NULL);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (stop != buf + len || !Py_IS_FINITE(d)) {
        return 0;
    }
    *out = d;
    return 1;
}

/* A number (0|[1-9][0-9]*)(.[0-9]+)? over [s, e) as a double, rounded as float() rounds; *end is set
 * where it stops. Returns 0 when [s, ...) does not start with such a number: a negative one included.
 *
 * Clinger's fast path: a mantissa of at most 15 significant digits (below 2^53) and at most 22 decimals
 * are both exact doubles, so one IEEE division rounds correctly. Longer numbers go to CPython's strtod,
 * which is ~10x slower (it resets the x87 control word on every call). */
static int
read_double(const char *s, const char *e, double *out, const char **end)
{
    if (s < e && *s == '-') {
        return 0; /* no price or size is negative: msgspec's to reject */
    }
    const char *q = s;
    const char *int_start = q;
    unsigned long long mantissa = 0;
    int digits = 0, decimals = 0;
    for (; q < e && *q >= '0' && *q <= '9'; q++) {
        mantissa = mantissa * 10 + (unsigned long long)(*q - '0');
        digits += digits || *q != '0';
    }
    if (q == int_start || (q - int_start > 1 && *int_start == '0') || digits > 15) {
        goto slow;
    }
    if (q < e && *q == '.') {
        const char *frac = ++q;
        for (; q < e && *q >= '0' && *q <= '9'; q++) {
            mantissa = mantissa * 10 + (unsigned long long)(*q - '0');
            digits += digits || *q != '0';
            if (digits > 15) {
                goto slow;
            }
        }
        if (q == frac) {
            return 0;
        }
        decimals = (int)(q - frac);
        if (decimals > 22) {
            goto slow;
        }
    }
    *out = (double)mantissa / POW10[decimals];
    *end = q;
    return 1;
slow:
    q = scan_number(s, e);
    if (q == NULL) {
        return 0;
    }
    *end = q;
    return slow_double(s, q - s, out);
}

/* A scalar Value (quoted or not) as a double. */
static int
parse_double(const Value *v, double *out)
{
    const char *end;
    return !v->is_null && read_double(v->start, v->start + v->len, out, &end) && end == v->start + v->len;
}

/* A number in place, quoted or not, as a double; the cursor moves past it. */
static int
read_number(Cursor *c, double *out)
{
    int quoted = expect(c, '"');
    const char *end;
    if (!read_double(c->p, c->end, out, &end)) {
        return 0;
    }
    c->p = end;
    return !quoted || expect(c, '"');
}

/* A non-negative integer of at most 18 digits, quoted or not; an absent one is 0. */
static int
parse_int(const Value *v, long long *out)
{
    if (v->start == NULL) {
        *out = 0;
        return 1;
    }
    if (v->is_null || v->len == 0 || v->len > 18 || (v->len > 1 && v->start[0] == '0')) {
        return 0;
    }
    long long n = 0;
    for (Py_ssize_t i = 0; i < v->len; i++) {
        char ch = v->start[i];
        if (ch < '0' || ch > '9') {
            return 0;
        }
        n = n * 10 + (ch - '0');
    }
    *out = n;
    return 1;
}

/* (price, size): a tuple of floats, which the garbage collector would untrack at its first pass anyway. */
static PyObject *
pair(double price, double size)
{
    PyObject *p = PyFloat_FromDouble(price);
    if (p == NULL) {
        return NULL;
    }
    PyObject *s = PyFloat_FromDouble(size);
    if (s == NULL) {
        Py_DECREF(p);
        return NULL;
    }
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
        Py_DECREF(p);
        Py_DECREF(s);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, p);
    PyTuple_SET_ITEM(t, 1, s);
    PyObject_GC_UnTrack(t);
    return t;
}

/* -- the envelope ------------------------------------------------------------------------------------ */

/* The body of an object: for each key, read_field(ctx, key, n, c) reads the value and returns 1, or 0 to fail. */
typedef int (*FieldReader)(void *ctx, const char *key, Py_ssize_t n, Cursor *c);

static int
scan_object(Cursor *c, FieldReader read_field, void *ctx)
{
    if (!expect(c, '{')) {
        return 0;
    }
    if (expect(c, '}')) {
        return 1;
    }
    for (;;) {
        const char *k;
        Py_ssize_t n;
        if (!expect(c, '"') || !read_string(c, &k, &n) || !expect(c, ':') || !read_field(ctx, k, n, c)) {
            return 0;
        }
        if (expect(c, '}')) {
            return 1;
        }
        if (!expect(c, ',')) {
            return 0;
        }
    }
}

typedef struct {
    FieldReader read_data;
    void *data;
    Value *topic, *subject;
    int seen_type, seen_data;
} Envelope;

/* One top-level field: topic, type and subject are strings, each once; data is an object read by read_data. */
static int
read_envelope_field(void *ctx, const char *k, Py_ssize_t n, Cursor *c)
{
    Envelope *env = ctx;
    if (KEY_IS(k, n, "data")) {
        return !env->seen_data++ && scan_object(c, env->read_data, env->data);
    }
    Value v;
    if (!read_value(c, &v) || !v.quoted) {
        return 0;
    }
    Value *slot = KEY_IS(k, n, "topic") ? env->topic : KEY_IS(k, n, "subject") ? env->subject : NULL;
    if (slot == NULL) {
        return KEY_IS(k, n, "type") && !env->seen_type++;
    }
    if (slot->start != NULL) {
        return 0; /* a duplicate key: leave the choice to msgspec */
    }
    *slot = v;
    return 1;
}

/* The whole frame: one object with a topic and data, whose fields read_data reads, and nothing after it. */
static int
scan_envelope(Cursor *c, FieldReader read_data, void *data, Value *topic, Value *subject)
{
    Envelope env = {read_data, data, topic, subject, 0, 0};
    return scan_object(c, read_envelope_field, &env) && c->p == c->end && env.seen_data && topic->start != NULL;
}

/* Read a scalar into *slot, once. */
static int
read_once(Cursor *c, Value *slot)
{
    Value v;
    if (!read_value(c, &v) || slot->start != NULL) {
        return 0;
    }
    *slot = v;
    return 1;
}

static PyObject *
build_update(PyObject *const *args, const Value *symbol, PyObject *bids, PyObject *asks, long long sequence,
             long long time_ms)
{
    /* steals bids and asks (not NULL); venue and received_at are the caller's, borrowed for the call */
    PyObject *call[7] = {args[1], NULL, bids, asks, NULL, NULL, args[2]};
    PyObject *result = NULL;
    if ((call[1] = PyUnicode_FromStringAndSize(symbol->start, symbol->len)) != NULL /* ASCII: checked */
        && (call[4] = PyLong_FromLongLong(sequence)) != NULL && (call[5] = PyLong_FromLongLong(time_ms)) != NULL) {
        result = PyObject_Vectorcall(args[3], call, 7, NULL);
    }
    Py_XDECREF(call[1]);
    Py_DECREF(bids);
    Py_DECREF(asks);
    Py_XDECREF(call[4]);
    Py_XDECREF(call[5]);
    return result;
}

/* -- /market/ticker:all ------------------------------------------------------------------------------ */

enum { T_ASK, T_ASK_SIZE, T_BID, T_BID_SIZE, T_SEQUENCE, T_TIME, T_FIELDS };

static int
read_ticker_field(void *ctx, const char *k, Py_ssize_t n, Cursor *c)
{
    Value *fields = ctx;
    Value skipped = {0};
    Value *slot = KEY_IS(k, n, "bestAsk")       ? &fields[T_ASK]
                  : KEY_IS(k, n, "bestAskSize") ? &fields[T_ASK_SIZE]
                  : KEY_IS(k, n, "bestBid")     ? &fields[T_BID]
                  : KEY_IS(k, n, "bestBidSize") ? &fields[T_BID_SIZE]
                  : KEY_IS(k, n, "sequence")    ? &fields[T_SEQUENCE]
                  : KEY_IS(k, n, "time")        ? &fields[T_TIME]
                                                : &skipped;
    return read_once(c, slot);
}

/* One side's top level: empty where the price or the size is absent, null or zero, as codec.py decides.
 * Returns 0 on a value that is not a number, else 1 with *side set (NULL on a Python error). */
static int
top_side(const Value *price, const Value *size, PyObject **side)
{
    double p = 0, s = 0;
    int has_p = price->start != NULL && !price->is_null, has_s = size->start != NULL && !size->is_null;
    if ((has_p && !parse_double(price, &p)) || (has_s && !parse_double(size, &s))) {
        return 0;
    }
    if (!has_p || !has_s || p == 0.0 || s == 0.0) {
        *side = PyTuple_New(0);
        return 1;
    }
    PyObject *level = pair(p, s);
    *side = level == NULL ? NULL : PyTuple_New(1);
    if (*side == NULL) {
        Py_XDECREF(level);
        return 1;
    }
    PyTuple_SET_ITEM(*side, 0, level);
    PyObject_GC_UnTrack(*side);
    return 1;
}

static PyObject *
ticker_all(PyObject *const *args)
{
    Cursor c = {PyBytes_AS_STRING(args[0]), PyBytes_AS_STRING(args[0]) + PyBytes_GET_SIZE(args[0])};
    Value fields[T_FIELDS], topic = {0}, subject = {0};
    memset(fields, 0, sizeof(fields));
    long long sequence, time_ms;
    if (!scan_envelope(&c, read_ticker_field, fields, &topic, &subject) || subject.start == NULL
        || !KEY_IS(topic.start, topic.len, "/market/ticker:all") || !parse_int(&fields[T_SEQUENCE], &sequence)
        || !parse_int(&fields[T_TIME], &time_ms)) {
        Py_RETURN_NONE;
    }
    PyObject *bids = NULL, *asks = NULL;
    if (!top_side(&fields[T_BID], &fields[T_BID_SIZE], &bids)) {
        Py_RETURN_NONE;
    }
    if (bids == NULL) {
        return NULL; /* out of memory: the error is set */
    }
    if (!top_side(&fields[T_ASK], &fields[T_ASK_SIZE], &asks)) {
        Py_DECREF(bids);
        Py_RETURN_NONE;
    }
    if (asks == NULL) {
        Py_DECREF(bids);
        return NULL;
    }
    return build_update(args, &subject, bids, asks, sequence, time_ms);
}

/* -- /spotMarket/level2Depth5 and level2Depth50 ------------------------------------------------------ */

typedef struct {
    PyObject *bids, *asks; /* owned; NULL: absent */
    Value timestamp;
    int failed;            /* a Python error (out of memory): not a fallback */
} DepthData;

#define MAX_LEVELS 512

/* [[price, size], ...] as a tuple of (float, float) tuples; every level kept, as sent. */
static int
read_levels(Cursor *c, PyObject **out, int *failed)
{
    PyObject *levels[MAX_LEVELS];
    Py_ssize_t n = 0;
    if (!expect(c, '[')) {
        return 0;
    }
    if (!expect(c, ']')) {
        for (;;) {
            double price, size;
            if (n == MAX_LEVELS || !expect(c, '[') || !read_number(c, &price) || !expect(c, ',')
                || !read_number(c, &size) || !expect(c, ']')) {
                goto fail;
            }
            if ((levels[n] = pair(price, size)) == NULL) {
                *failed = 1;
                goto fail;
            }
            n++;
            if (expect(c, ']')) {
                break;
            }
            if (!expect(c, ',')) {
                goto fail;
            }
        }
    }
    *out = PyTuple_New(n);
    if (*out == NULL) {
        *failed = 1;
        goto fail;
    }
    memcpy(((PyTupleObject *)*out)->ob_item, levels, n * sizeof(PyObject *));
    if (n) {
        PyObject_GC_UnTrack(*out);
    }
    return 1;
fail:
    while (n) {
        Py_DECREF(levels[--n]);
    }
    return 0;
}

static int
read_depth_field(void *ctx, const char *k, Py_ssize_t n, Cursor *c)
{
    DepthData *d = ctx;
    Value skipped = {0};
    PyObject **side = KEY_IS(k, n, "bids") ? &d->bids : KEY_IS(k, n, "asks") ? &d->asks : NULL;
    if (side != NULL) {
        return *side == NULL && read_levels(c, side, &d->failed);
    }
    return read_once(c, KEY_IS(k, n, "timestamp") ? &d->timestamp : &skipped);
}

static PyObject *
depth(PyObject *const *args)
{
    Cursor c = {PyBytes_AS_STRING(args[0]), PyBytes_AS_STRING(args[0]) + PyBytes_GET_SIZE(args[0])};
    DepthData d = {0};
    Value topic = {0}, subject = {0};
    long long timestamp;
    int ok = scan_envelope(&c, read_depth_field, &d, &topic, &subject) && parse_int(&d.timestamp, &timestamp);
    if (!ok || d.failed) {
        Py_XDECREF(d.bids);
        Py_XDECREF(d.asks);
        if (d.failed) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    /* the symbol: the topic after its first ':', as codec.py's topic.partition(":")[2] */
    const char *colon = memchr(topic.start, ':', topic.len);
    Value symbol = {colon ? colon + 1 : topic.start + topic.len, 0, 1, 0};
    symbol.len = topic.start + topic.len - symbol.start;
    return build_update(args, &symbol, d.bids ? d.bids : PyTuple_New(0), d.asks ? d.asks : PyTuple_New(0),
                        timestamp, timestamp);
}

/* -- dispatch ---------------------------------------------------------------------------------------- */

#define HAS_PREFIX(s, n, lit) ((n) >= (Py_ssize_t)sizeof(lit) - 1 && memcmp((s), (lit), sizeof(lit) - 1) == 0)

/* KuCoin writes "topic" first: a frame that does not start with one of these heads is not the scanner's. */
static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan(raw: bytes, venue, received_at, update_type)");
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    if (HAS_PREFIX(s, n, "{\"topic\":\"/market/ticker:all\"")) {
        return ticker_all(args);
    }
    if (HAS_PREFIX(s, n, "{\"topic\":\"/spotMarket/level2Depth50:")
        || HAS_PREFIX(s, n, "{\"topic\":\"/spotMarket/level2Depth5:")) {
        return depth(args);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(raw, venue, received_at, update_type) -> the update of a ticker:all or level2Depth5/50 frame, or "
     "None for any other frame and any frame to decode with msgspec."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_framescan",
    "A C scanner for KuCoin's ticker:all and level2Depth frames (see cryptoarb.venues.kucoin.codec).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__framescan(void)
{
    return PyModule_Create(&module);
}
