/* promwrite._cmodel: the model's hot paths in C, on the CPython API (cffi,
 * which binds the kernels, cannot read Python objects).
 *
 * - Constructors: the usual calls of Sample(value, timestamp_ms=t),
 *   Label(name, value) and TimeSeries(labels, samples) are served by a
 *   vectorcall set on the Python classes of promwrite.model; every other call
 *   shape, and every value a fast path does not take, goes to the class's
 *   own __new__ or __init__, which checks and words the error. Samples (a
 *   float and an int) and Labels of two str cannot be in a reference cycle,
 *   so the garbage collector does not track them, as CPython does not track
 *   such plain tuples once it has seen them.
 * - Builders (cbuild.c): a decoded request's columns to model objects.
 * - Readers: sample_arrays reads a request's samples (Sample objects or
 *   plain (value, timestamp_ms) tuples) into packed columns, label_texts a
 *   request's label dicts into the texts the C label kernel takes, each in
 *   one pass; both answer None for anything they do not take, and the
 *   caller's Python path then reads (and words the error) as before.
 */
#include "cmodel.h"

#include <stdint.h>
#include <string.h>

PyTypeObject *sample_type;         /* promwrite.model.Sample, once registered */
static PyObject *sample_python_new; /* its Python __new__(cls, value, time=None, *, timestamp_ms=None) */
static PyObject *str_timestamp_ms;

/* 1 and *out set when v is an exact float, or an exact int a double holds; 0 otherwise (no error set). */
static int exact_number(PyObject *v, double *out)
{
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        double d = PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear(); /* too large: the Python path words it */
            return 0;
        }
        *out = d;
        return 1;
    }
    return 0;
}

/* 1 and *out set when v is an exact int in int64; 0 otherwise (no error set). */
static int exact_int64(PyObject *v, int64_t *out)
{
    int overflow = 0;
    long long x;
    if (!PyLong_CheckExact(v))
        return 0;
    x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = (int64_t)x;
    return 1;
}

/* func(first, *args) for a vectorcall's args (nargs positional, then kwnames' values). */
static PyObject *call_with_first(PyObject *func, PyObject *first, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    PyObject *small[8], **full, *result;
    Py_ssize_t total = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0), i;
    if (total + 1 <= (Py_ssize_t)(sizeof small / sizeof *small)) {
        full = small;
    } else if ((full = PyMem_New(PyObject *, (size_t)total + 1)) == NULL) {
        return PyErr_NoMemory();
    }
    full[0] = first;
    for (i = 0; i < total; i++)
        full[i + 1] = args[i];
    result = PyObject_Vectorcall(func, full, (size_t)nargs + 1, kwnames);
    if (full != small)
        PyMem_Free(full);
    return result;
}

/* Sample(value, timestamp_ms=stamp) of the common types, or NULL with no
 * error set when the Python constructor must decide (NULL with an error on
 * memory exhaustion). */
static PyObject *fast_sample(PyTypeObject *cls, PyObject *value, PyObject *stamp)
{
    PyObject *self, *number;
    double d;
    int64_t ms;
    if (!exact_number(value, &d) || !exact_int64(stamp, &ms))
        return NULL;
    if (PyFloat_CheckExact(value)) {
        Py_INCREF(value);
        number = value;
    } else if ((number = PyFloat_FromDouble(d)) == NULL) {
        return NULL;
    }
    self = cls->tp_alloc(cls, 2);
    if (self == NULL) {
        Py_DECREF(number);
        return NULL;
    }
    Py_INCREF(stamp);
    PyTuple_SET_ITEM(self, 0, number);
    PyTuple_SET_ITEM(self, 1, stamp);
    PyObject_GC_UnTrack(self); /* a float and an int: never part of a cycle */
    return self;
}

static int is_timestamp_ms(PyObject *name)
{
    return name == str_timestamp_ms || PyUnicode_Compare(name, str_timestamp_ms) == 0;
}

/* Sample's tp_vectorcall: the same result as type.__call__ (Sample has no __init__). */
static PyObject *sample_vectorcall(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *result;
    if ((PyTypeObject *)cls == sample_type && nargs == 1 && kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1 &&
        is_timestamp_ms(PyTuple_GET_ITEM(kwnames, 0))) {
        result = fast_sample(sample_type, args[0], args[1]);
        if (result != NULL || PyErr_Occurred())
            return result;
    }
    return call_with_first(sample_python_new, cls, args, nargs, kwnames);
}

/* 1 when cls is a heap type deriving from tuple with __slots__ = () (no __dict__, no weakrefs). */
static int plain_tuple_subclass(PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    return PyType_Check(cls) && (type->tp_flags & Py_TPFLAGS_HEAPTYPE) && type->tp_base == &PyTuple_Type &&
           type->tp_basicsize == PyTuple_Type.tp_basicsize && type->tp_itemsize == PyTuple_Type.tp_itemsize &&
           type->tp_dictoffset == 0 && type->tp_weaklistoffset == 0;
}

/* register_sample(Sample): serve Sample(...) calls from C from now on. */
static PyObject *register_sample(PyObject *module, PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *new_method;
    (void)module;
    if (!plain_tuple_subclass(cls)) {
        PyErr_SetString(PyExc_TypeError, "register_sample takes a tuple subclass with __slots__ = ()");
        return NULL;
    }
    new_method = PyObject_GetAttrString(cls, "__new__"); /* the staticmethod's function */
    if (new_method == NULL)
        return NULL;
    Py_XSETREF(sample_python_new, new_method);
    Py_INCREF(cls);
    Py_XSETREF(sample_type, type);
    type->tp_vectorcall = sample_vectorcall;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- Label */

PyTypeObject *label_type;         /* promwrite.model.Label, once registered */
static PyObject *label_python_new; /* its namedtuple __new__(cls, name, value) */

/* Label's tp_vectorcall: Label(name, value) made here, any other call by its __new__. */
static PyObject *label_vectorcall(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *self;
    if (type != label_type || nargs != 2 || kwnames != NULL)
        return call_with_first(label_python_new, cls, args, nargs, kwnames);
    if ((self = type->tp_alloc(type, 2)) == NULL)
        return NULL;
    Py_INCREF(args[0]);
    Py_INCREF(args[1]);
    PyTuple_SET_ITEM(self, 0, args[0]);
    PyTuple_SET_ITEM(self, 1, args[1]);
    if (PyUnicode_CheckExact(args[0]) && PyUnicode_CheckExact(args[1]))
        PyObject_GC_UnTrack(self); /* two str: never part of a cycle */
    return self;
}

/* register_label(Label): serve Label(...) calls from C from now on. */
static PyObject *register_label(PyObject *module, PyObject *cls)
{
    PyObject *new_method;
    (void)module;
    if (!plain_tuple_subclass(cls)) {
        PyErr_SetString(PyExc_TypeError, "register_label takes a tuple subclass with __slots__ = ()");
        return NULL;
    }
    if ((new_method = PyObject_GetAttrString(cls, "__new__")) == NULL)
        return NULL;
    Py_XSETREF(label_python_new, new_method);
    Py_INCREF(cls);
    Py_XSETREF(label_type, (PyTypeObject *)cls);
    label_type->tp_vectorcall = label_vectorcall;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------- TimeSeries */

/* TimeSeries's slots, in this order, as its __init__ sets them. */
const char *const series_slot_names[N_SERIES_SLOTS] = {"_labels", "samples", "exemplars", "histograms",
                                                          "metadata", "start_timestamp_ms"};
PyTypeObject *series_type;
PyObject *series_slots[N_SERIES_SLOTS]; /* their descriptors */
static PyObject *series_python_init;           /* TimeSeries.__init__ */
static PyObject *str_sample, *empty_tuple;

/* [item], or [] for None. */
static PyObject *one_or_none(PyObject *item)
{
    PyObject *list = PyList_New(item == Py_None ? 0 : 1);
    if (list != NULL && item != Py_None) {
        Py_INCREF(item);
        PyList_SET_ITEM(list, 0, item);
    }
    return list;
}

/* TimeSeries(labels), TimeSeries(labels, samples) with samples a list or
 * tuple, TimeSeries(labels, sample=s): the slots as __init__ sets them, or
 * NULL with no error set for any other call. */
static int fast_series(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *values[N_SERIES_SLOTS], *samples = NULL;
    size_t k;
    int rc = 0;
    if (kwnames == NULL && nargs == 2 && (PyList_CheckExact(args[1]) || PyTuple_CheckExact(args[1])))
        samples = PySequence_List(args[1]);
    else if (kwnames == NULL && nargs == 1)
        samples = PyList_New(0);
    else if (nargs == 1 && PyTuple_GET_SIZE(kwnames) == 1 && PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), str_sample) == 0)
        samples = one_or_none(args[1]);
    else
        return 0;
    if (samples == NULL)
        return -1;
    values[0] = args[0];
    values[1] = samples;
    values[2] = PyList_New(0);
    values[3] = PyList_New(0);
    values[4] = values[5] = Py_None;
    if (values[2] == NULL || values[3] == NULL)
        rc = -1;
    for (k = 0; k < N_SERIES_SLOTS && rc == 0; k++)
        rc = Py_TYPE(series_slots[k])->tp_descr_set(series_slots[k], self, values[k]);
    Py_DECREF(samples);
    Py_XDECREF(values[2]);
    Py_XDECREF(values[3]);
    return rc == 0 ? 1 : -1;
}

/* TimeSeries's tp_vectorcall: the same result as type.__call__ (object.__new__, then __init__). */
static PyObject *series_vectorcall(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *self, *result;
    int rc;
    if ((self = type->tp_new(type, empty_tuple, NULL)) == NULL)
        return NULL;
    if (type == series_type && (rc = fast_series(self, args, nargs, kwnames)) != 0) {
        if (rc == 1)
            return self;
        Py_DECREF(self);
        return NULL;
    }
    if ((result = call_with_first(series_python_init, self, args, nargs, kwnames)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(result);
    return self;
}

/* register_series(TimeSeries): serve TimeSeries(...) calls from C from now on. */
static PyObject *register_series(PyObject *module, PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *slots[N_SERIES_SLOTS], *init;
    size_t k;
    (void)module;
    if (!PyType_Check(cls) || !(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_base != &PyBaseObject_Type ||
        type->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "register_series takes a class of object with __init__ and __slots__");
        return NULL;
    }
    for (k = 0; k < N_SERIES_SLOTS; k++)
        slots[k] = NULL;
    for (k = 0; k < N_SERIES_SLOTS; k++) {
        slots[k] = PyObject_GetAttrString(cls, series_slot_names[k]); /* the slot's member descriptor */
        if (slots[k] == NULL)
            goto fail;
        if (Py_TYPE(slots[k])->tp_descr_set == NULL || PyObject_TypeCheck(slots[k], &PyProperty_Type)) {
            PyErr_Format(PyExc_TypeError, "register_series: %s is not a slot", series_slot_names[k]);
            goto fail;
        }
    }
    if ((init = PyObject_GetAttrString(cls, "__init__")) == NULL)
        goto fail;
    for (k = 0; k < N_SERIES_SLOTS; k++)
        Py_XSETREF(series_slots[k], slots[k]);
    Py_XSETREF(series_python_init, init);
    Py_INCREF(cls);
    Py_XSETREF(series_type, type);
    type->tp_vectorcall = series_vectorcall;
    Py_RETURN_NONE;
fail:
    for (k = 0; k < N_SERIES_SLOTS; k++)
        Py_XDECREF(slots[k]);
    return NULL;
}

/* ------------------------------------------------------ sample columns */

/* 1 when item is a Sample or an exact tuple of two whose fields C takes, with them in *v, *t. */
static int read_sample(PyObject *item, double *v, int64_t *t)
{
    if (!(PyTuple_CheckExact(item) || (sample_type != NULL && Py_TYPE(item) == sample_type)) ||
        PyTuple_GET_SIZE(item) != 2)
        return 0;
    return exact_number(PyTuple_GET_ITEM(item, 0), v) && exact_int64(PyTuple_GET_ITEM(item, 1), t);
}

/* sample_arrays(per_series: list of lists) -> (counts, values, stamps) as int64,
 * double and int64 bytes in native order, or None when any series or sample is
 * not of the types read here. */
static PyObject *sample_arrays(PyObject *module, PyObject *per_series)
{
    Py_ssize_t n, i, j, total = 0;
    PyObject *counts = NULL, *values = NULL, *stamps = NULL;
    int64_t *cp, *tp;
    double *vp;
    (void)module;
    if (!PyList_CheckExact(per_series))
        Py_RETURN_NONE;
    n = PyList_GET_SIZE(per_series);
    for (i = 0; i < n; i++) {
        PyObject *samples = PyList_GET_ITEM(per_series, i);
        if (!PyList_CheckExact(samples))
            Py_RETURN_NONE;
        total += PyList_GET_SIZE(samples); /* lists hold at most PY_SSIZE_T_MAX / 8 items: no overflow */
        if (total > PY_SSIZE_T_MAX / 8)
            return PyErr_NoMemory();
    }
    if (n > PY_SSIZE_T_MAX / 8)
        return PyErr_NoMemory();
    counts = PyBytes_FromStringAndSize(NULL, n * 8);
    values = PyBytes_FromStringAndSize(NULL, total * 8);
    stamps = PyBytes_FromStringAndSize(NULL, total * 8);
    if (counts == NULL || values == NULL || stamps == NULL)
        goto fail;
    if (PyList_GET_SIZE(per_series) != n) /* changed by code the allocation ran (a finalizer) */
        goto not_taken;
    cp = (int64_t *)PyBytes_AS_STRING(counts);
    vp = (double *)PyBytes_AS_STRING(values);
    tp = (int64_t *)PyBytes_AS_STRING(stamps);
    for (i = 0; i < n; i++) {
        PyObject *samples = PyList_GET_ITEM(per_series, i);
        Py_ssize_t m = PyList_GET_SIZE(samples);
        if (m > total) /* a list grown since it was counted (by a finalizer the allocation ran) */
            goto not_taken;
        total -= m;
        cp[i] = (int64_t)m;
        for (j = 0; j < m; j++) {
            double v;
            int64_t t;
            if (!read_sample(PyList_GET_ITEM(samples, j), &v, &t))
                goto not_taken;
            memcpy(vp++, &v, sizeof v);
            memcpy(tp++, &t, sizeof t);
        }
    }
    if (total != 0)
        goto not_taken;
    return Py_BuildValue("(NNN)", counts, values, stamps);

not_taken:
    Py_DECREF(counts);
    Py_DECREF(values);
    Py_DECREF(stamps);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(counts);
    Py_XDECREF(values);
    Py_XDECREF(stamps);
    return NULL;
}

/* ---------------------------------------------------------- label text */

typedef struct {
    char *data;
    size_t len, cap;
} text_t;

/* Room for `more` bytes at the end of t; 0 (MemoryError set) if there is none to be had. */
static int reserve(text_t *t, size_t more)
{
    size_t cap = t->cap ? t->cap : 4096;
    char *grown;
    if (t->cap - t->len >= more)
        return 1;
    while (cap - t->len < more) {
        if (cap > (size_t)PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return 0;
        }
        cap *= 2;
    }
    if ((grown = PyMem_Realloc(t->data, cap)) == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    t->data = grown;
    t->cap = cap;
    return 1;
}

/* Appends the UTF-8 of str s and a '\0': 1; 0 when s holds a '\0' or a
 * surrogate (str.encode's error, worded by the Python path); -1 on error. */
static int put_utf8(text_t *t, PyObject *s)
{
    Py_ssize_t n, i;
    int kind;
    const void *data;
    char *p;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0)
        return -1;
#endif
    n = PyUnicode_GET_LENGTH(s);
    data = PyUnicode_DATA(s);
    if (PyUnicode_IS_ASCII(s)) {
        if (!reserve(t, (size_t)n + 1))
            return -1;
        if (memchr(data, 0, (size_t)n) != NULL)
            return 0;
        memcpy(t->data + t->len, data, (size_t)n);
        t->len += (size_t)n;
        t->data[t->len++] = 0;
        return 1;
    }
    if ((size_t)n > ((size_t)PY_SSIZE_T_MAX - 1) / 4) {
        PyErr_NoMemory();
        return -1;
    }
    if (!reserve(t, 4 * (size_t)n + 1))
        return -1;
    kind = PyUnicode_KIND(s);
    p = t->data + t->len;
    for (i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == 0 || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        if (c < 0x80) {
            *p++ = (char)c;
        } else if (c < 0x800) {
            *p++ = (char)(0xC0 | (c >> 6));
            *p++ = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            *p++ = (char)(0xE0 | (c >> 12));
            *p++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *p++ = (char)(0x80 | (c & 0x3F));
        } else {
            *p++ = (char)(0xF0 | (c >> 18));
            *p++ = (char)(0x80 | ((c >> 12) & 0x3F));
            *p++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *p++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *p++ = 0;
    t->len = (size_t)(p - t->data);
    return 1;
}

/* label_texts(dicts: list of dict) -> (names, values, n_labels, counts): every
 * set's names and values in dict order as UTF-8, each text "\0"-joined
 * (str.join then .encode), and each set's label count as int64 bytes; None
 * when a set is not a dict of str to str, or a string holds "\0" or a
 * surrogate. No Python code runs until the texts are complete. */
static PyObject *label_texts(PyObject *module, PyObject *dicts)
{
    text_t names = {NULL, 0, 0}, values = {NULL, 0, 0};
    Py_ssize_t n, i, n_labels = 0;
    int64_t *counts = NULL;
    PyObject *result = NULL;
    int ok = 1;
    (void)module;
    if (!PyList_CheckExact(dicts))
        Py_RETURN_NONE;
    n = PyList_GET_SIZE(dicts);
    if ((counts = PyMem_New(int64_t, (size_t)(n ? n : 1))) == NULL)
        return PyErr_NoMemory();
    for (i = 0; i < n && ok == 1; i++) {
        PyObject *labels = PyList_GET_ITEM(dicts, i), *name, *value;
        Py_ssize_t pos = 0;
        if (!PyDict_CheckExact(labels)) {
            ok = 0;
            break;
        }
        counts[i] = (int64_t)PyDict_GET_SIZE(labels);
        n_labels += PyDict_GET_SIZE(labels);
        while (ok == 1 && PyDict_Next(labels, &pos, &name, &value)) {
            if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(value))
                ok = 0;
            else if ((ok = put_utf8(&names, name)) == 1)
                ok = put_utf8(&values, value);
        }
    }
    if (ok == 1) {
        /* drop the '\0' after the last string: separators go between strings */
        size_t nlen = names.len ? names.len - 1 : 0, vlen = values.len ? values.len - 1 : 0;
        result = Py_BuildValue("(y#y#ny#)", names.data ? names.data : "", (Py_ssize_t)nlen,
                               values.data ? values.data : "", (Py_ssize_t)vlen, n_labels, (const char *)counts,
                               (Py_ssize_t)(n * (Py_ssize_t)sizeof(int64_t)));
    } else if (ok == 0) {
        result = Py_None;
        Py_INCREF(result);
    }
    PyMem_Free(names.data);
    PyMem_Free(values.data);
    PyMem_Free(counts);
    return result;
}

static PyMethodDef methods[] = {
    {"build_label_sets", (PyCFunction)(void (*)(void))build_label_sets, METH_FASTCALL,
     "(strings, pairs, label_refs, series_labels, unsorted) -> each series' LabelSet (or tuple): decoder._label_sets in C."},
    {"build_request_series", (PyCFunction)(void (*)(void))build_request_series, METH_FASTCALL,
     "(strings, pairs, label_refs, series_labels, unsorted, values, stamps, series_samples, metadata) -> each "
     "series' TimeSeries: build_series of build_label_sets and build_sample_lists, in one pass."},
    {"build_sample_lists", (PyCFunction)(void (*)(void))build_sample_lists, METH_FASTCALL,
     "(values, stamps, series_samples) -> each series' list of Samples: decoder._samples in C."},
    {"build_series", (PyCFunction)(void (*)(void))build_series, METH_FASTCALL,
     "(labels, samples, metadata, starts) -> a TimeSeries of each, filled as decoded: decoder._series in C."},
    {"label_texts", label_texts, METH_O,
     "(names, values, n_labels, counts) of a list of label dicts, the texts \"\\0\"-joined UTF-8; None for what C does not read."},
    {"register_label", register_label, METH_O, "Serve Label(...) calls from C (promwrite.model does this once)."},
    {"register_label_set", register_label_set, METH_O, "The LabelSet class build_label_sets makes (promwrite.decoder registers it)."},
    {"register_sample", register_sample, METH_O, "Serve Sample(...) calls from C (promwrite.model does this once)."},
    {"register_series", register_series, METH_O, "Serve TimeSeries(...) calls from C (promwrite.model does this once)."},
    {"sample_arrays", sample_arrays, METH_O,
     "(counts, values, timestamps) bytes of a list of sample lists, or None for what C does not read."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "promwrite._cmodel", "The model's hot paths in C (see csrc/cpython/cmodel.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cmodel(void)
{
    if (str_timestamp_ms == NULL && (str_timestamp_ms = PyUnicode_InternFromString("timestamp_ms")) == NULL)
        return NULL;
    if (str_sample == NULL && (str_sample = PyUnicode_InternFromString("sample")) == NULL)
        return NULL;
    if (empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
