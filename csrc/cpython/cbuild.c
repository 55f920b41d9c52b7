/* promwrite._cmodel's builders: a decoded request's columns to model objects.
 *
 * The C twins of promwrite.decoder's _label_sets, _samples, _series and
 * _series_of (all three in one pass, each series' objects made together),
 * for the columns a decode kernel returns (promwrite._pydecode.Decoded): the
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
    col->view.obj = NULL; /* nothing to release */
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

/* 0 when the class `name` is registered; -1 with RuntimeError otherwise. */
static int registered(PyTypeObject *type, const char *name)
{
    if (type != NULL)
        return 0;
    PyErr_Format(PyExc_RuntimeError,
                 "promwrite._cmodel: %s is not registered (importing promwrite does it, unless PROMWRITE_BACKEND=python)",
                 name);
    return -1;
}

/* 0 when obj is a list or tuple (of n items, unless n < 0), or None where it may be; -1 with an error otherwise. */
static int check_sequence(PyObject *obj, int may_be_none, Py_ssize_t n, const char *name)
{
    if (may_be_none && obj == Py_None)
        return 0;
    if (!PyList_Check(obj) && !PyTuple_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list, not %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (n >= 0 && PySequence_Fast_GET_SIZE(obj) != n) {
        PyErr_Format(PyExc_ValueError, "%zd series' labels but %zd series' %s", n, PySequence_Fast_GET_SIZE(obj), name);
        return -1;
    }
    return 0;
}

/* seq[i] (seq checked by check_sequence; None gives None) as a new reference, or NULL with ValueError when
 * seq is no longer that long (a list changed by code an allocation ran: a finalizer). */
static PyObject *item_at(PyObject *seq, Py_ssize_t i, const char *name)
{
    PyObject *item = Py_None;
    if (seq != Py_None) {
        if (i >= PySequence_Fast_GET_SIZE(seq)) {
            PyErr_Format(PyExc_ValueError, "%s changed while it was read", name);
            return NULL;
        }
        item = PySequence_Fast_GET_ITEM(seq, i);
    }
    Py_INCREF(item);
    return item;
}

/* ------------------------------------------------------------- labels */

/* A request's label columns, open: every distinct Label made, the series' labels read one after another. */
typedef struct {
    PyObject *strings; /* a list or tuple */
    column_t pairs, refs, counts, unsorted;
    PyObject **labels; /* a Label per pair */
    char *is_unsorted; /* per series */
    Py_ssize_t n_pairs, next_ref;
    int labels_untracked;
} label_reader_t;

/* Label(strings[name], strings[value]) of a pair of string ids, or NULL with ValueError for an id out of range. */
static PyObject *new_label(PyObject *strings, int64_t name, int64_t value, Py_ssize_t pair)
{
    PyObject *label = label_type->tp_alloc(label_type, 2), *a, *b;
    Py_ssize_t n;
    if (label == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(strings); /* after the allocation, which may run code that changes the list */
    if (name < 0 || name >= (int64_t)n || value < 0 || value >= (int64_t)n) {
        Py_DECREF(label);
        PyErr_Format(PyExc_ValueError, "label pair %zd refers to strings %lld and %lld, of %zd", pair, (long long)name,
                     (long long)value, n);
        return NULL;
    }
    a = PySequence_Fast_GET_ITEM(strings, (Py_ssize_t)name);
    b = PySequence_Fast_GET_ITEM(strings, (Py_ssize_t)value);
    Py_INCREF(a);
    Py_INCREF(b);
    PyTuple_SET_ITEM(label, 0, a);
    PyTuple_SET_ITEM(label, 1, b);
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b))
        PyObject_GC_UnTrack(label); /* two str: never part of a cycle */
    return label;
}

static void close_labels(label_reader_t *r)
{
    Py_ssize_t i;
    if (r->labels != NULL)
        for (i = 0; i < r->n_pairs; i++)
            Py_XDECREF(r->labels[i]);
    PyMem_Free(r->labels);
    PyMem_Free(r->is_unsorted);
    PyBuffer_Release(&r->pairs.view);
    PyBuffer_Release(&r->refs.view);
    PyBuffer_Release(&r->counts.view);
    PyBuffer_Release(&r->unsorted.view);
    Py_XDECREF(r->strings);
    memset(r, 0, sizeof *r);
}

/* 0 with r open on args (strings, pairs, label_refs, series_labels, unsorted), all checked but the
 * references; -1 with an error (r closed) otherwise. */
static int open_labels(label_reader_t *r, PyObject *const *args)
{
    Py_ssize_t i, n;
    memset(r, 0, sizeof *r);
    if (registered(label_type, "Label") < 0 || registered(label_set_type, "LabelSet") < 0 ||
        check_sequence(args[0], 0, -1, "strings") < 0 || open_column(&r->pairs, args[1], "q", "pairs") < 0 ||
        open_column(&r->refs, args[2], "q", "label_refs") < 0 ||
        open_column(&r->counts, args[3], "q", "series_labels") < 0 ||
        open_column(&r->unsorted, args[4], "q", "unsorted") < 0 || check_counts(&r->counts, r->refs.n, "labels") < 0)
        goto fail;
    if (r->pairs.n % 2 != 0) {
        PyErr_Format(PyExc_ValueError, "label pairs hold %zd ids, an odd number", r->pairs.n);
        goto fail;
    }
    Py_INCREF(args[0]);
    r->strings = args[0];
    n = r->counts.n;
    r->labels = PyMem_Calloc((size_t)(r->pairs.n ? r->pairs.n / 2 : 1), sizeof *r->labels);
    r->is_unsorted = PyMem_Calloc((size_t)(n ? n : 1), 1);
    if (r->labels == NULL || r->is_unsorted == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (i = 0; i < r->unsorted.n; i++) {
        int64_t s = int_at(&r->unsorted, i);
        if (s < 0 || s >= (int64_t)n) {
            PyErr_Format(PyExc_ValueError, "unsorted series %lld is not one of the %zd series", (long long)s, n);
            goto fail;
        }
        r->is_unsorted[s] = 1;
    }
    r->labels_untracked = 1;
    for (; r->n_pairs < r->pairs.n / 2; r->n_pairs++) {
        i = r->n_pairs;
        if ((r->labels[i] = new_label(r->strings, int_at(&r->pairs, 2 * i), int_at(&r->pairs, 2 * i + 1), i)) == NULL)
            goto fail;
        r->labels_untracked &= !PyObject_GC_IsTracked(r->labels[i]);
    }
    return 0;
fail:
    close_labels(r);
    return -1;
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

/* Series i's labels (i = 0, 1, ... in turn): a LabelSet, or the tuple itself for an unsorted series; NULL on error. */
static PyObject *next_labels(label_reader_t *r, Py_ssize_t i)
{
    Py_ssize_t count = (Py_ssize_t)int_at(&r->counts, i), j;
    PyObject *tuple = PyTuple_New(count), *set;
    if (tuple == NULL)
        return NULL;
    for (j = 0; j < count; j++) { /* within refs: the counts sum to their number */
        int64_t ref = int_at(&r->refs, r->next_ref++);
        if (ref < 0 || ref >= (int64_t)r->n_pairs) {
            Py_DECREF(tuple);
            PyErr_Format(PyExc_ValueError, "series %zd refers to label pair %lld, of %zd", i, (long long)ref,
                         r->n_pairs);
            return NULL;
        }
        Py_INCREF(r->labels[ref]);
        PyTuple_SET_ITEM(tuple, j, r->labels[ref]);
    }
    if (count > 0 && r->labels_untracked)
        PyObject_GC_UnTrack(tuple); /* as the collector would: it holds no object it tracks */
    if (r->is_unsorted[i])
        return tuple;
    set = new_label_set(tuple);
    Py_DECREF(tuple);
    return set;
}

/* build_label_sets(strings, pairs, label_refs, series_labels, unsorted) -> decoder._label_sets's list. */
PyObject *build_label_sets(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    label_reader_t labels;
    PyObject *out;
    Py_ssize_t i;
    (void)module;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "build_label_sets takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    if (open_labels(&labels, args) < 0)
        return NULL;
    out = PyList_New(labels.counts.n);
    for (i = 0; out != NULL && i < labels.counts.n; i++) {
        PyObject *item = next_labels(&labels, i);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, item);
    }
    close_labels(&labels);
    return out;
}

/* ------------------------------------------------------------- samples */

#define STAMP_CACHE 1024 /* ints of the timestamps seen last, direct-mapped by a hash */

/* A request's sample columns, open: the series' samples read one after another. */
typedef struct {
    column_t values, stamps, counts;
    Py_ssize_t next;
    int64_t *cached_stamps; /* STAMP_CACHE each */
    PyObject **cached_ints;
} sample_reader_t;

static void close_samples(sample_reader_t *r)
{
    int k;
    if (r->cached_ints != NULL)
        for (k = 0; k < STAMP_CACHE; k++)
            Py_XDECREF(r->cached_ints[k]);
    PyMem_Free(r->cached_ints);
    PyMem_Free(r->cached_stamps);
    PyBuffer_Release(&r->values.view);
    PyBuffer_Release(&r->stamps.view);
    PyBuffer_Release(&r->counts.view);
    memset(r, 0, sizeof *r);
}

/* 0 with r open on args (values, stamps, series_samples), all checked; -1 with an error (r closed) otherwise. */
static int open_samples(sample_reader_t *r, PyObject *const *args)
{
    memset(r, 0, sizeof *r);
    if (registered(sample_type, "Sample") < 0 || open_column(&r->values, args[0], "d", "values") < 0 ||
        open_column(&r->stamps, args[1], "q", "stamps") < 0 || open_column(&r->counts, args[2], "q", "series_samples") < 0)
        goto fail;
    if (r->values.n != r->stamps.n) {
        PyErr_Format(PyExc_ValueError, "%zd sample values but %zd timestamps", r->values.n, r->stamps.n);
        goto fail;
    }
    if (check_counts(&r->counts, r->values.n, "samples") < 0)
        goto fail;
    r->cached_stamps = PyMem_Calloc(STAMP_CACHE, sizeof *r->cached_stamps);
    r->cached_ints = PyMem_Calloc(STAMP_CACHE, sizeof *r->cached_ints);
    if (r->cached_stamps == NULL || r->cached_ints == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    return 0;
fail:
    close_samples(r);
    return -1;
}

/* An int of t (a new reference), shared with the calls before of an equal t where the cache still holds it. */
static PyObject *stamp_int(sample_reader_t *r, int64_t t)
{
    size_t slot = (size_t)(((uint64_t)t * UINT64_C(0x9E3779B97F4A7C15)) >> 54); /* 10 bits: STAMP_CACHE */
    PyObject *made = r->cached_ints[slot];
    if (made == NULL || r->cached_stamps[slot] != t) {
        if ((made = PyLong_FromLongLong((long long)t)) == NULL)
            return NULL;
        Py_XSETREF(r->cached_ints[slot], made);
        r->cached_stamps[slot] = t;
    }
    Py_INCREF(made);
    return made;
}

/* Sample(value, timestamp_ms=stamp), untracked by the collector (a float and an int: never in a cycle). */
static PyObject *new_sample(sample_reader_t *r, double value, int64_t stamp)
{
    PyObject *number = PyFloat_FromDouble(value), *ms = NULL, *sample;
    if (number == NULL || (ms = stamp_int(r, stamp)) == NULL ||
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

/* Series i's Samples (i = 0, 1, ... in turn) as a new list, or NULL. */
static PyObject *next_samples(sample_reader_t *r, Py_ssize_t i)
{
    Py_ssize_t count = (Py_ssize_t)int_at(&r->counts, i), j;
    PyObject *list = PyList_New(count);
    for (j = 0; list != NULL && j < count; j++, r->next++) { /* within values: the counts sum to their number */
        PyObject *sample = new_sample(r, double_at(&r->values, r->next), int_at(&r->stamps, r->next));
        if (sample == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, j, sample);
    }
    return list;
}

/* build_sample_lists(values, stamps, series_samples) -> decoder._samples's list of lists. */
PyObject *build_sample_lists(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    sample_reader_t samples;
    PyObject *out;
    Py_ssize_t i;
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "build_sample_lists takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (open_samples(&samples, args) < 0)
        return NULL;
    out = PyList_New(samples.counts.n);
    for (i = 0; out != NULL && i < samples.counts.n; i++) {
        PyObject *item = next_samples(&samples, i);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, item);
    }
    close_samples(&samples);
    return out;
}

/* ------------------------------------------------------------- series */

/* A TimeSeries of the given parts (borrowed: held by the caller), its exemplars and histograms new empty
 * lists: as decoder._series fills one. */
static PyObject *new_series(const Py_ssize_t *offsets, PyObject *labels, PyObject *samples, PyObject *metadata,
                            PyObject *start)
{
    PyObject *series = new_object(series_type), *exemplars = NULL, *histograms = NULL;
    if (series == NULL || (exemplars = PyList_New(0)) == NULL || (histograms = PyList_New(0)) == NULL) {
        Py_XDECREF(series);
        Py_XDECREF(exemplars);
        return NULL;
    }
    fill_slot(series, offsets[0], labels);
    fill_slot(series, offsets[1], samples);
    *(PyObject **)((char *)series + offsets[2]) = exemplars; /* the new lists' references */
    *(PyObject **)((char *)series + offsets[3]) = histograms;
    fill_slot(series, offsets[4], metadata);
    fill_slot(series, offsets[5], start);
    return series;
}

/* offsets of TimeSeries's slots: 0; -1 with an error when it is not registered or its slots are not slots. */
static int series_offsets(Py_ssize_t *offsets)
{
    if (registered(series_type, "TimeSeries") < 0)
        return -1;
    return slot_offsets(series_type, series_slots, series_slot_names, N_SERIES_SLOTS, offsets);
}

/* build_series(labels, samples, metadata, starts) -> decoder._series's list of TimeSeries. */
PyObject *build_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *const names[] = {"labels", "samples", "metadata", "starts"};
    PyObject *out;
    Py_ssize_t offsets[N_SERIES_SLOTS], n, i;
    int k;
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "build_series takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (series_offsets(offsets) < 0 || check_sequence(args[0], 0, -1, names[0]) < 0)
        return NULL;
    n = PySequence_Fast_GET_SIZE(args[0]);
    for (k = 1; k < 4; k++)
        if (check_sequence(args[k], k >= 2, n, names[k]) < 0)
            return NULL;
    out = PyList_New(n);
    for (i = 0; out != NULL && i < n; i++) {
        PyObject *parts[4] = {NULL, NULL, NULL, NULL}, *series = NULL;
        for (k = 0; k < 4 && (k == 0 || parts[k - 1] != NULL); k++)
            parts[k] = item_at(args[k], i, names[k]);
        if (parts[3] != NULL)
            series = new_series(offsets, parts[0], parts[1], parts[2], parts[3]);
        for (k = 0; k < 4; k++)
            Py_XDECREF(parts[k]);
        if (series == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, series);
    }
    return out;
}

/* build_request_series(strings, pairs, label_refs, series_labels, unsorted, values, stamps, series_samples,
 * metadata) -> a TimeSeries per series: build_series of build_label_sets and build_sample_lists in one pass,
 * each series' objects made together (and so near in memory). */
PyObject *build_request_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    label_reader_t labels;
    sample_reader_t samples;
    PyObject *out = NULL;
    Py_ssize_t offsets[N_SERIES_SLOTS], n, i;
    (void)module;
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "build_request_series takes 9 arguments (%zd given)", nargs);
        return NULL;
    }
    if (series_offsets(offsets) < 0 || open_labels(&labels, args) < 0)
        return NULL;
    if (open_samples(&samples, args + 5) < 0) {
        close_labels(&labels);
        return NULL;
    }
    n = labels.counts.n;
    if (samples.counts.n != n)
        PyErr_Format(PyExc_ValueError, "%zd series' labels but %zd series' samples", n, samples.counts.n);
    else if (check_sequence(args[8], 1, n, "metadata") == 0)
        out = PyList_New(n);
    for (i = 0; out != NULL && i < n; i++) {
        PyObject *labels_of = next_labels(&labels, i), *samples_of = NULL, *metadata = NULL, *series = NULL;
        if (labels_of != NULL && (samples_of = next_samples(&samples, i)) != NULL &&
            (metadata = item_at(args[8], i, "metadata")) != NULL)
            series = new_series(offsets, labels_of, samples_of, metadata, Py_None);
        Py_XDECREF(labels_of);
        Py_XDECREF(samples_of);
        Py_XDECREF(metadata);
        if (series == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, series);
    }
    close_labels(&labels);
    close_samples(&samples);
    return out;
}
