/* promwrite._cmodel's parts: the model classes cmodel.c registers, read by
 * cbuild.c's builders, and the builders cmodel.c lists among the module's
 * functions. */
#ifndef PROMWRITE_CMODEL_H
#define PROMWRITE_CMODEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* promwrite.model's Sample, Label and TimeSeries once registered (NULL before) */
extern PyTypeObject *sample_type, *label_type, *series_type;

/* TimeSeries's slots (_labels, samples, exemplars, histograms, metadata, start_timestamp_ms): names, descriptors */
#define N_SERIES_SLOTS 6
extern const char *const series_slot_names[N_SERIES_SLOTS];
extern PyObject *series_slots[N_SERIES_SLOTS];

/* cbuild.c: a decoded request's columns to model objects (see there) */
PyObject *register_label_set(PyObject *module, PyObject *cls);
PyObject *build_label_sets(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *build_sample_lists(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *build_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *build_request_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
