/* promwrite._cmodel's builders: a decoded request's columns to model objects.
 *
 * The C twins of promwrite.decoder's _label_sets, _samples and _series, for
 * the columns a decode kernel returns (promwrite._pydecode.Decoded): the
 * same objects, of the same types and values, made without running Python
 * code. Being callable from Python with anything, they check every column's
 * type, every count and every reference before using it (TypeError,
 * ValueError). Labels, Samples and the label tuples are made untracked by
 * the garbage collector (none can be part of a cycle), LabelSets and
 * TimeSeries tracked (their slots take anything); equal timestamps share an
 * int within one call.
 */
#include "cmodel.h"

#include <stdint.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX /* before 3.12 */
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

/* ------------------------------------------------------------- columns */

/* An array('q') or array('d') held (not resizable) while it is read. */
typedef struct {
    Py_buffer view;
    const char *items;
    Py_ssize_t n;
} column_t;

/* 0 with col open on obj's items of one-letter format `typecode`; -1 with TypeError otherwise. */
static int open_column(column_t *col, PyObject *obj, const char *typecode, const char *name)
{
    col->view.obj = NULL;
    if (PyObject_CheckBuffer(obj) && PyObject_GetBuffer(obj, &col->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) == 0) {
        if (col->view.itemsize == 8 && col->view.format != NULL && strcmp(col->view.format, typecode) == 0) {
            col->items = (const char *)col->view.buf;
            col->n = col->view.len / 8;
            return 0;
        }
        PyBuffer_Release(&col->view);
    }
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s must be an array('%s'), not %.100s", name, typecode, Py_TYPE(obj)->tp_name);
    return -1;
}

static int64_t int_at(const column_t *col, Py_ssize_t i)
{
    int64_t x;
    memcpy(&x, col->items + 8 * i, sizeof x); /* a buffer need not be aligned */
    return x;
}

static double double_at(const column_t *col, Py_ssize_t i)
{
    double x;
    memcpy(&x, col->items + 8 * i, sizeof x);
    return x;
}

/* 0 when each of counts is >= 0 and they sum to `total` items; -1 with ValueError otherwise. */
static int check_counts(const column_t *counts, Py_ssize_t total, const char *what)
{
    Py_ssize_t i, left = total;
    for (i = 0; i < counts->n; i++) {
        int64_t c = int_at(counts, i);
        if (c < 0 || c > (int64_t)left) {
            PyErr_Format(PyExc_ValueError, "series %zd has %lld %s, of %zd left", i, (long long)c, what, left);
            return -1;
        }
        left -= (Py_ssize_t)c;
    }
    if (left != 0) {
        PyErr_Format(PyExc_ValueError, "the series' %s counts sum to %zd, not the %zd there are", what, total - left,
                     total);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- slots */

/* Each named slot's offset in cls's objects, from its member descriptor: 0; -1 with TypeError if one is not a slot. */
static int slot_offsets(PyTypeObject *cls, PyObject *const *descriptors, const char *const *names, size_t n,
                        Py_ssize_t *offsets)
{
    size_t k;
    for (k = 0; k < n; k++) {
        PyObject *d = descriptors[k];
        const PyMemberDef *member = NULL;
        if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyDescrObject *)d)->d_type == cls)
            member = ((PyMemberDescrObject *)d)->d_member;
        if (member == NULL || member->type != Py_T_OBJECT_EX || (member->flags & Py_READONLY) ||
            member->offset < (Py_ssize_t)sizeof(PyObject) ||
            member->offset > cls->tp_basicsize - (Py_ssize_t)sizeof(PyObject *)) {
            PyErr_Format(PyExc_TypeError, "%.100s.%s is not a writable object slot", cls->tp_name, names[k]);
            return -1;
        }
        offsets[k] = member->offset;
    }
    return 0;
}

/* Stores value in the (empty) slot at offset of obj. */
static void fill_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    Py_INCREF(value);
    *(PyObject **)((char *)obj + offset) = value;
}

/* A new object of cls (a class of object with __slots__), GC-tracked, its slots empty; as object.__new__(cls). */
static PyObject *new_object(PyTypeObject *cls)
{
    return cls->tp_alloc(cls, 0);
}

static const char *const label_set_slot_names[] = {"labels", "_pb", "_hash"};
#define N_LABEL_SET_SLOTS (sizeof label_set_slot_names / sizeof *label_set_slot_names)
static PyTypeObject *label_set_type; /* promwrite.model.LabelSet, once registered */
static Py_ssize_t label_set_offsets[N_LABEL_SET_SLOTS];

/* register_label_set(LabelSet): build_label_sets makes LabelSets of this class. */
PyObject *register_label_set(PyObject *module, PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *descriptors[N_LABEL_SET_SLOTS] = {NULL, NULL, NULL};
    Py_ssize_t offsets[N_LABEL_SET_SLOTS];
    size_t k;
    int rc = -1;
    (void)module;
    if (!PyType_Check(cls) || !(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_base != &PyBaseObject_Type ||
        type->tp_new != PyBaseObject_Type.tp_new || type->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "register_label_set takes a class of object with __slots__");
        return NULL;
    }
    for (k = 0; k < N_LABEL_SET_SLOTS; k++)
        if ((descriptors[k] = PyObject_GetAttrString(cls, label_set_slot_names[k])) == NULL)
            goto done;
    if ((rc = slot_offsets(type, descriptors, label_set_slot_names, N_LABEL_SET_SLOTS, offsets)) == 0) {
        memcpy(label_set_offsets, offsets, sizeof offsets);
        Py_INCREF(cls);
        Py_XSETREF(label_set_type, type);
    }
done:
    for (k = 0; k < N_LABEL_SET_SLOTS; k++)
        Py_XDECREF(descriptors[k]);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* 0 when promwrite.model registered the class `name`; -1 with RuntimeError otherwise. */
static int registered(PyTypeObject *type, const char *name)
{
    if (type != NULL)
        return 0;
    PyErr_Format(PyExc_RuntimeError, "promwrite._cmodel: %s is not registered (promwrite.model does it)", name);
    return -1;
}

/* list or tuple obj as a new tuple (a snapshot no code can change), or NULL with TypeError. */
static PyObject *as_tuple(PyObject *obj, const char *name)
{
    if (PyTuple_Check(obj)) {
        Py_INCREF(obj);
        return obj;
    }
    if (PyList_Check(obj))
        return PyList_AsTuple(obj);
    PyErr_Format(PyExc_TypeError, "%s must be a list, not %.100s", name, Py_TYPE(obj)->tp_name);
    return NULL;
}

/* ------------------------------------------------------------- labels */

/* Label(strings[name], strings[value]) of a pair of string ids, or NULL with ValueError for an id out of range. */
static PyObject *new_label(PyObject *strings, int64_t name, int64_t value, Py_ssize_t pair)
{
    Py_ssize_t n = PyTuple_GET_SIZE(strings);
    PyObject *label, *a, *b;
    if (name < 0 || name >= (int64_t)n || value < 0 || value >= (int64_t)n) {
        PyErr_Format(PyExc_ValueError, "label pair %zd refers to strings %lld and %lld, of %zd", pair, (long long)name,
                     (long long)value, n);
        return NULL;
    }
    if ((label = label_type->tp_alloc(label_type, 2)) == NULL)
        return NULL;
    a = PyTuple_GET_ITEM(strings, (Py_ssize_t)name);
    b = PyTuple_GET_ITEM(strings, (Py_ssize_t)value);
    Py_INCREF(a);
    Py_INCREF(b);
    PyTuple_SET_ITEM(label, 0, a);
    PyTuple_SET_ITEM(label, 1, b);
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b))
        PyObject_GC_UnTrack(label); /* two str: never part of a cycle */
    return label;
}

/* A LabelSet of the (sorted) labels, with no encoding or hash cached yet. */
static PyObject *new_label_set(PyObject *labels)
{
    PyObject *set = new_object(label_set_type);
    if (set != NULL) {
        fill_slot(set, label_set_offsets[0], labels);
        fill_slot(set, label_set_offsets[1], Py_None);
        fill_slot(set, label_set_offsets[2], Py_None);
    }
    return set;
}

/* The series' labels, each a LabelSet or, for the unsorted series, the tuple itself: a new list, or NULL. */
static PyObject *label_sets_of(PyObject *strings, const column_t *pairs, const column_t *refs,
                               const column_t *counts, const column_t *unsorted)
{
    Py_ssize_t n_pairs = pairs->n / 2, n = counts->n, i, j, r = 0;
    PyObject **labels = PyMem_Calloc((size_t)(n_pairs ? n_pairs : 1), sizeof *labels), *out = NULL;
    char *is_unsorted = PyMem_Calloc((size_t)(n ? n : 1), 1);
    int labels_untracked = 1;
    if (labels == NULL || is_unsorted == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (pairs->n % 2 != 0) {
        PyErr_Format(PyExc_ValueError, "label pairs hold %zd ids, an odd number", pairs->n);
        goto done;
    }
    if (check_counts(counts, refs->n, "labels") < 0)
        goto done;
    for (i = 0; i < unsorted->n; i++) {
        int64_t s = int_at(unsorted, i);
        if (s < 0 || s >= (int64_t)n) {
            PyErr_Format(PyExc_ValueError, "unsorted series %lld is not one of the %zd series", (long long)s, n);
            goto done;
        }
        is_unsorted[s] = 1;
    }
    for (i = 0; i < n_pairs; i++) {
        if ((labels[i] = new_label(strings, int_at(pairs, 2 * i), int_at(pairs, 2 * i + 1), i)) == NULL)
            goto done;
        labels_untracked &= !PyObject_GC_IsTracked(labels[i]);
    }
    if ((out = PyList_New(n)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        Py_ssize_t count = (Py_ssize_t)int_at(counts, i);
        PyObject *tuple = PyTuple_New(count), *item;
        if (tuple == NULL)
            goto fail;
        for (j = 0; j < count; j++, r++) {
            int64_t ref = int_at(refs, r);
            if (ref < 0 || ref >= (int64_t)n_pairs) {
                Py_DECREF(tuple);
                PyErr_Format(PyExc_ValueError, "series %zd refers to label pair %lld, of %zd", i, (long long)ref,
                             n_pairs);
                goto fail;
            }
            Py_INCREF(labels[ref]);
            PyTuple_SET_ITEM(tuple, j, labels[ref]);
        }
        if (count > 0 && labels_untracked)
            PyObject_GC_UnTrack(tuple); /* as the collector would: it holds no object it tracks */
        if (is_unsorted[i]) {
            item = tuple;
        } else {
            item = new_label_set(tuple);
            Py_DECREF(tuple);
            if (item == NULL)
                goto fail;
        }
        PyList_SET_ITEM(out, i, item);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    if (labels != NULL)
        for (i = 0; i < n_pairs; i++)
            Py_XDECREF(labels[i]);
    PyMem_Free(labels);
    PyMem_Free(is_unsorted);
    return out;
}

/* build_label_sets(strings, pairs, label_refs, series_labels, unsorted) -> decoder._label_sets's list. */
PyObject *build_label_sets(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *const names[] = {"pairs", "label_refs", "series_labels", "unsorted"};
    column_t cols[4];
    PyObject *strings = NULL, *out = NULL;
    int k, opened = 0;
    (void)module;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "build_label_sets takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    if (registered(label_type, "Label") < 0 || registered(label_set_type, "LabelSet") < 0)
        return NULL;
    if ((strings = as_tuple(args[0], "strings")) == NULL)
        return NULL;
    for (; opened < 4; opened++)
        if (open_column(&cols[opened], args[opened + 1], "q", names[opened]) < 0)
            goto done;
    out = label_sets_of(strings, &cols[0], &cols[1], &cols[2], &cols[3]);
done:
    for (k = 0; k < opened; k++)
        PyBuffer_Release(&cols[k].view);
    Py_DECREF(strings);
    return out;
}

/* ------------------------------------------------------------- samples */

#define STAMP_CACHE 1024 /* ints of the timestamps seen last, direct-mapped by a hash */

typedef struct {
    int64_t stamp[STAMP_CACHE];
    PyObject *made[STAMP_CACHE];
} stamp_cache_t;

/* An int of t (a new reference), shared with the calls before of an equal t where the cache still holds it. */
static PyObject *stamp_int(stamp_cache_t *cache, int64_t t)
{
    size_t slot = (size_t)(((uint64_t)t * UINT64_C(0x9E3779B97F4A7C15)) >> 54);
    PyObject *made = cache->made[slot];
    if (made == NULL || cache->stamp[slot] != t) {
        if ((made = PyLong_FromLongLong((long long)t)) == NULL)
            return NULL;
        Py_XSETREF(cache->made[slot], made);
        cache->stamp[slot] = t;
    }
    Py_INCREF(made);
    return made;
}

/* Sample(value, timestamp_ms=stamp), untracked by the collector (a float and an int: never in a cycle). */
static PyObject *new_sample(double value, int64_t stamp, stamp_cache_t *cache)
{
    PyObject *number = PyFloat_FromDouble(value), *ms = NULL, *sample;
    if (number == NULL || (ms = stamp_int(cache, stamp)) == NULL ||
        (sample = sample_type->tp_alloc(sample_type, 2)) == NULL) {
        Py_XDECREF(number);
        Py_XDECREF(ms);
        return NULL;
    }
    PyTuple_SET_ITEM(sample, 0, number);
    PyTuple_SET_ITEM(sample, 1, ms);
    PyObject_GC_UnTrack(sample);
    return sample;
}

/* Each series' Samples as a list: a new list of them, or NULL. */
static PyObject *sample_lists_of(const column_t *values, const column_t *stamps, const column_t *counts)
{
    Py_ssize_t n = counts->n, i, j, k = 0;
    stamp_cache_t *cache;
    PyObject *out;
    if (values->n != stamps->n) {
        PyErr_Format(PyExc_ValueError, "%zd sample values but %zd timestamps", values->n, stamps->n);
        return NULL;
    }
    if (check_counts(counts, values->n, "samples") < 0)
        return NULL;
    if ((cache = PyMem_Calloc(1, sizeof *cache)) == NULL)
        return PyErr_NoMemory();
    if ((out = PyList_New(n)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        Py_ssize_t count = (Py_ssize_t)int_at(counts, i);
        PyObject *list = PyList_New(count);
        if (list == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, list);
        for (j = 0; j < count; j++, k++) {
            PyObject *sample = new_sample(double_at(values, k), int_at(stamps, k), cache);
            if (sample == NULL)
                goto fail;
            PyList_SET_ITEM(list, j, sample);
        }
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    for (i = 0; i < STAMP_CACHE; i++)
        Py_XDECREF(cache->made[i]);
    PyMem_Free(cache);
    return out;
}

/* build_sample_lists(values, stamps, series_samples) -> decoder._samples's list of lists. */
PyObject *build_sample_lists(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    column_t values, stamps, counts;
    PyObject *out = NULL;
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "build_sample_lists takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (registered(sample_type, "Sample") < 0 || open_column(&values, args[0], "d", "values") < 0)
        return NULL;
    if (open_column(&stamps, args[1], "q", "stamps") == 0) {
        if (open_column(&counts, args[2], "q", "series_samples") == 0) {
            out = sample_lists_of(&values, &stamps, &counts);
            PyBuffer_Release(&counts.view);
        }
        PyBuffer_Release(&stamps.view);
    }
    PyBuffer_Release(&values.view);
    return out;
}

/* ------------------------------------------------------------- series */

/* The TimeSeries of parts[0..3] (labels, samples, metadata, starts: tuples of n, the last two or None): a new list. */
static PyObject *series_of(PyObject *const *parts, Py_ssize_t n, const Py_ssize_t *offsets)
{
    PyObject *out = PyList_New(n);
    Py_ssize_t i;
    for (i = 0; out != NULL && i < n; i++) {
        PyObject *series = new_object(series_type), *exemplars = NULL, *histograms = NULL;
        if (series == NULL || (exemplars = PyList_New(0)) == NULL || (histograms = PyList_New(0)) == NULL) {
            Py_XDECREF(series);
            Py_XDECREF(exemplars);
            Py_CLEAR(out);
            break;
        }
        fill_slot(series, offsets[0], PyTuple_GET_ITEM(parts[0], i));
        fill_slot(series, offsets[1], PyTuple_GET_ITEM(parts[1], i));
        *(PyObject **)((char *)series + offsets[2]) = exemplars; /* the new lists' references */
        *(PyObject **)((char *)series + offsets[3]) = histograms;
        fill_slot(series, offsets[4], parts[2] == Py_None ? Py_None : PyTuple_GET_ITEM(parts[2], i));
        fill_slot(series, offsets[5], parts[3] == Py_None ? Py_None : PyTuple_GET_ITEM(parts[3], i));
        PyList_SET_ITEM(out, i, series);
    }
    return out;
}

/* build_series(labels, samples, metadata, starts) -> decoder._series's list of TimeSeries. */
PyObject *build_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *const names[] = {"labels", "samples", "metadata", "starts"};
    PyObject *parts[4] = {NULL, NULL, NULL, NULL}, *out = NULL;
    Py_ssize_t offsets[N_SERIES_SLOTS], n = 0;
    int k;
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "build_series takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (registered(series_type, "TimeSeries") < 0 ||
        slot_offsets(series_type, series_slots, series_slot_names, N_SERIES_SLOTS, offsets) < 0)
        return NULL;
    for (k = 0; k < 4; k++) {
        if (k >= 2 && args[k] == Py_None) {
            Py_INCREF(Py_None);
            parts[k] = Py_None;
            continue;
        }
        if ((parts[k] = as_tuple(args[k], names[k])) == NULL)
            goto done;
        if (k == 0) {
            n = PyTuple_GET_SIZE(parts[0]);
        } else if (PyTuple_GET_SIZE(parts[k]) != n) {
            PyErr_Format(PyExc_ValueError, "%zd series' labels but %zd series' %s", n, PyTuple_GET_SIZE(parts[k]),
                         names[k]);
            goto done;
        }
    }
    out = series_of(parts, n, offsets);
done:
    for (k = 0; k < 4; k++)
        Py_XDECREF(parts[k]);
    return out;
}
