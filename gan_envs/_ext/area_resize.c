/*
 * Exact area resampling of uint8 frames with integer tap tables.
 *
 * resize(src, dst, row_index, row_weight, col_index, col_weight, denominator)
 *
 *   src         uint8, C-contiguous, shape (H, W, C) or (H, W)
 *   dst         uint8, C-contiguous, writable, shape (h, w, C) or (h, w)
 *   row_index   int32 (h, ty): source row of each vertical tap
 *   row_weight  int32 (h, ty): integer weight of each vertical tap (0 pads)
 *   col_index   int32 (w, tx): source column of each horizontal tap
 *   col_weight  int32 (w, tx): integer weight of each horizontal tap (0 pads)
 *   denominator int: D such that the true value is sum(weights * pixels) / D
 *
 * Every output is floor(acc / D + 1/2) computed exactly: the Python side only calls this
 * when D is odd, so acc / D is never a tie and the rounding equals OpenCV's INTER_AREA.
 * Vertical taps run first over whole contiguous rows (vectorised by the compiler), then
 * horizontal taps per output pixel. The GIL is released while computing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "area_resize: %s must be a C-contiguous%s buffer", name,
                     writable ? " writable" : "");
        return -1;
    }
    return 0;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

/* One output row's vertical taps over whole source rows, five at a time so the sums stay in
 * registers: acc[k] = sum_t weight[t] * row(index[t])[k]. The caller guarantees the sum of the
 * weights times 255 fits in 16 bits. Padded taps have weight 0 and a valid index. */
MULTIVERSION
static void vertical_taps(const uint8_t *S, Py_ssize_t row_len, const int32_t *index,
                          const int32_t *weight, Py_ssize_t taps, uint16_t *restrict acc) {
    for (Py_ssize_t t = 0; t < taps; t += 5) {
        const uint8_t *p[5];
        uint16_t wt[5];
        for (int j = 0; j < 5; j++) {
            int use = t + j < taps;
            p[j] = S + (Py_ssize_t)index[use ? t + j : t] * row_len;
            wt[j] = use ? (uint16_t)weight[t + j] : 0;
        }
        const uint8_t *restrict p0 = p[0], *restrict p1 = p[1], *restrict p2 = p[2];
        const uint8_t *restrict p3 = p[3], *restrict p4 = p[4];
        const uint16_t w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3], w4 = wt[4];
        if (t == 0) {
            for (Py_ssize_t k = 0; k < row_len; k++)
                acc[k] = (uint16_t)(w0 * p0[k] + w1 * p1[k] + w2 * p2[k] + w3 * p3[k] +
                                    w4 * p4[k]);
        } else {
            for (Py_ssize_t k = 0; k < row_len; k++)
                acc[k] += (uint16_t)(w0 * p0[k] + w1 * p1[k] + w2 * p2[k] + w3 * p3[k] +
                                     w4 * p4[k]);
        }
    }
}

/* One output row: horizontal taps (contiguous source columns from start[x]), then exact
 * rounding: the true value (2*total + den) / (2*den) is never within 1/(2*den) of an integer,
 * and den <= 1024 keeps float32's error (about 3e-5 on values below 256) far below that. */
MULTIVERSION
static void horizontal_taps(const uint16_t *restrict acc, const Py_ssize_t *start,
                            const int32_t *weight, Py_ssize_t w, Py_ssize_t taps, Py_ssize_t C,
                            uint32_t den, float inv, uint32_t *restrict sums,
                            uint8_t *restrict out) {
    if (C == 3 && taps == 3) { /* e.g. 160 -> 64 columns: unrolled, the common Atari case */
        for (Py_ssize_t x = 0; x < w; x++) {
            const uint16_t *a = acc + start[x];
            const uint32_t w0 = (uint32_t)weight[3 * x], w1 = (uint32_t)weight[3 * x + 1],
                           w2 = (uint32_t)weight[3 * x + 2];
            sums[3 * x] = w0 * a[0] + w1 * a[3] + w2 * a[6];
            sums[3 * x + 1] = w0 * a[1] + w1 * a[4] + w2 * a[7];
            sums[3 * x + 2] = w0 * a[2] + w1 * a[5] + w2 * a[8];
        }
    } else if (C == 3) {
        for (Py_ssize_t x = 0; x < w; x++) {
            const uint16_t *a = acc + start[x];
            const int32_t *wt = weight + x * taps;
            uint32_t r = 0, g = 0, b = 0;
            for (Py_ssize_t t = 0; t < taps; t++) {
                r += (uint32_t)wt[t] * a[3 * t];
                g += (uint32_t)wt[t] * a[3 * t + 1];
                b += (uint32_t)wt[t] * a[3 * t + 2];
            }
            sums[3 * x] = r;
            sums[3 * x + 1] = g;
            sums[3 * x + 2] = b;
        }
    } else {
        for (Py_ssize_t x = 0; x < w; x++) {
            const uint16_t *a = acc + start[x];
            const int32_t *wt = weight + x * taps;
            for (Py_ssize_t c = 0; c < C; c++) {
                uint32_t total = 0;
                for (Py_ssize_t t = 0; t < taps; t++) total += (uint32_t)wt[t] * a[C * t + c];
                sums[C * x + c] = total;
            }
        }
    }
    for (Py_ssize_t k = 0; k < w * C; k++)
        out[k] = (uint8_t)(int)((float)(2 * sums[k] + den) * inv);
}

/* The sum each of the n tap rows of `weights` (taps each) has, or -1 when a weight is negative
 * or the rows' sums differ. */
static long long common_sum(const int32_t *weights, Py_ssize_t n, Py_ssize_t taps) {
    long long first = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long total = 0;
        for (Py_ssize_t t = 0; t < taps; t++) {
            if (weights[i * taps + t] < 0) return -1;
            total += weights[i * taps + t];
        }
        if (i > 0 && total != first) return -1;
        first = total;
    }
    return first;
}

static PyObject *resize(PyObject *self, PyObject *args) {
    PyObject *src_o, *dst_o, *ri_o, *rw_o, *ci_o, *cw_o;
    long long denominator;
    if (!PyArg_ParseTuple(args, "OOOOOOL", &src_o, &dst_o, &ri_o, &rw_o, &ci_o, &cw_o,
                          &denominator))
        return NULL;
    Py_buffer src, dst, ri, rw, ci, cw;
    if (get_buffer(src_o, &src, 0, "src")) return NULL;
    if (get_buffer(dst_o, &dst, 1, "dst")) { PyBuffer_Release(&src); return NULL; }
    if (get_buffer(ri_o, &ri, 0, "row_index")) goto fail2;
    if (get_buffer(rw_o, &rw, 0, "row_weight")) goto fail3;
    if (get_buffer(ci_o, &ci, 0, "col_index")) goto fail4;
    if (get_buffer(cw_o, &cw, 0, "col_weight")) goto fail5;

    if (src.itemsize != 1 || dst.itemsize != 1 || src.ndim < 2 || src.ndim > 3 ||
        dst.ndim != src.ndim || ri.ndim != 2 || rw.ndim != 2 || ci.ndim != 2 || cw.ndim != 2 ||
        ri.itemsize != 4 || rw.itemsize != 4 || ci.itemsize != 4 || cw.itemsize != 4) {
        PyErr_SetString(PyExc_ValueError, "area_resize: bad buffer shapes or types");
        goto fail6;
    }
    Py_ssize_t H = src.shape[0], W = src.shape[1], C = src.ndim == 3 ? src.shape[2] : 1;
    Py_ssize_t h = dst.shape[0], w = dst.shape[1];
    Py_ssize_t dC = dst.ndim == 3 ? dst.shape[2] : 1;
    Py_ssize_t ty = ri.shape[1], tx = ci.shape[1];
    if (dC != C || ri.shape[0] != h || rw.shape[0] != h || rw.shape[1] != ty ||
        ci.shape[0] != w || cw.shape[0] != w || cw.shape[1] != tx || denominator <= 0 ||
        h < 1 || w < 1 || C < 1 || ty < 1 || tx < 1) {
        PyErr_SetString(PyExc_ValueError, "area_resize: tap tables do not match the shapes");
        goto fail6;
    }
    const int32_t *rows = (const int32_t *)ri.buf, *rweights = (const int32_t *)rw.buf;
    const int32_t *cols = (const int32_t *)ci.buf, *cweights = (const int32_t *)cw.buf;
    for (Py_ssize_t i = 0; i < h * ty; i++)
        if (rows[i] < 0 || rows[i] >= H) {
            PyErr_SetString(PyExc_ValueError, "area_resize: row index out of range");
            goto fail6;
        }
    for (Py_ssize_t i = 0; i < w * tx; i++)
        if (cols[i] < 0 || cols[i] >= W) {
            PyErr_SetString(PyExc_ValueError, "area_resize: column index out of range");
            goto fail6;
        }

    Py_ssize_t row_len = W * C;
    /* Every output row (column) must have non-negative weights with the same sum as the first:
     * that bounds the 16-bit vertical sums and the 32-bit totals for all of them. */
    long long row_weight_sum = common_sum(rweights, h, ty);
    long long col_weight_sum = common_sum(cweights, w, tx);
    if (row_weight_sum < 0 || col_weight_sum < 0 || row_weight_sum * 255 > 65535 ||
        denominator > 1024 ||
        row_weight_sum * col_weight_sum != denominator) {
        PyErr_SetString(PyExc_ValueError,
                        "area_resize: needs non-negative weights, every row's summing to the same "
                        "value <= 257, and denominator <= 1024");
        goto fail6;
    }
    for (Py_ssize_t x = 0; x < w; x++)
        for (Py_ssize_t t = 1; t < tx; t++)
            if (cweights[x * tx + t] != 0 && cols[x * tx + t] != cols[x * tx] + t) {
                PyErr_SetString(PyExc_ValueError, "area_resize: column taps must be contiguous");
                goto fail6;
            }
    /* horizontal_taps reads all tx taps from each column's first tap, also the padding (weight
     * 0) of a column with fewer taps, up to tx - 1 pixels past the row's end: those zeroed extra
     * lanes keep every read inside acc (11 -> 4 columns read 1 pixel past it). */
    uint16_t *acc = (uint16_t *)calloc((size_t)row_len + (size_t)tx * (size_t)C, sizeof(uint16_t));
    uint32_t *sums = (uint32_t *)malloc(sizeof(uint32_t) * (size_t)(w * C));
    Py_ssize_t *starts = (Py_ssize_t *)malloc(sizeof(Py_ssize_t) * (size_t)w);
    if (acc == NULL || sums == NULL || starts == NULL) {
        free(acc); free(sums); free(starts); PyErr_NoMemory(); goto fail6;
    }
    for (Py_ssize_t x = 0; x < w; x++) /* Py_ssize_t: a row of more than 2 GiB overflowed int32 */
        starts[x] = (Py_ssize_t)cols[x * tx] * C;
    const uint8_t *S = (const uint8_t *)src.buf;
    uint8_t *D = (uint8_t *)dst.buf;
    const float inv = (float)(1.0 / (2.0 * (double)denominator));
    const uint32_t den = (uint32_t)denominator;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < h; y++) {
        vertical_taps(S, row_len, rows + y * ty, rweights + y * ty, ty, acc);
        horizontal_taps(acc, starts, cweights, w, tx, C, den, inv, sums, D + y * w * C);
    }
    Py_END_ALLOW_THREADS
    free(acc);
    free(sums);
    free(starts);
    PyBuffer_Release(&cw); PyBuffer_Release(&ci); PyBuffer_Release(&rw);
    PyBuffer_Release(&ri); PyBuffer_Release(&dst); PyBuffer_Release(&src);
    Py_RETURN_NONE;

fail6: PyBuffer_Release(&cw);
fail5: PyBuffer_Release(&ci);
fail4: PyBuffer_Release(&rw);
fail3: PyBuffer_Release(&ri);
fail2: PyBuffer_Release(&dst); PyBuffer_Release(&src);
    return NULL;
}

static PyMethodDef methods[] = {
    {"resize", resize, METH_VARARGS,
     "resize(src, dst, row_index, row_weight, col_index, col_weight, denominator)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "area_resize",
                                    "Exact integer area resampling of uint8 frames.", -1,
                                    methods};

PyMODINIT_FUNC PyInit_area_resize(void) { return PyModule_Create(&module); }
