/* dogesim.engine._kernel: the engine's hottest per-attempt loops in C.
 *
 * - tick(...): the body of one quiet tick of `attempts.Scalar.run` (runs without
 *   resources): choice by bisection, thinning, callback or veto, the sinks, the counts,
 *   the state update and the filing of the next attempt into the calendar.
 * - run_plain(...): `attempts._run_plain`, the vector path's callback and sink loop.
 * - gather(...): the subject and transition lists `attempts._feed_batches` hands one batch
 *   sink, built in one pass over the tick's arrays.
 *
 * Both are twins of the Python loops (`dogesim.engine.kernel` chooses; the Python loops
 * stay the reference): the same calls in the same order, with the same arguments, and on
 * an exception the same structures touched up to the failing call, which then propagates.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* How many positions ahead `gather` fetches subjects into the cache. */
#define PREFETCH 16
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH_ADDRESS(p) __builtin_prefetch((p), 1)
#else
#define PREFETCH_ADDRESS(p) ((void)(p))
#endif

static PyObject *heappush;     /* heapq.heappush */
static PyObject *str_subjects; /* "subjects" */
static PyObject *str_transitions;
static PyObject *str_partial;
static PyObject *one_obj; /* the int 1 */

/* `bisect_right(row, u)` over a list of floats (other items compare as Python does). */
static Py_ssize_t
bisect_row(PyObject *row, PyObject *u_obj, double u)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(row);
    while (lo < hi) {
        Py_ssize_t mid = ((size_t)lo + hi) / 2;
        PyObject *item = PyList_GET_ITEM(row, mid);
        int less;
        if (PyFloat_CheckExact(item)) {
            less = u < PyFloat_AS_DOUBLE(item);
        }
        else {
            Py_INCREF(item);
            less = PyObject_RichCompareBool(u_obj, item, Py_LT);
            Py_DECREF(item);
            if (less < 0) {
                return -1;
            }
        }
        if (less) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* `seq[k] += 1` for a list of counts. */
static int
count_one(PyObject *seq, Py_ssize_t k)
{
    PyObject *old = PySequence_GetItem(seq, k);
    if (old == NULL) {
        return -1;
    }
    PyObject *new = PyNumber_InPlaceAdd(old, one_obj);
    Py_DECREF(old);
    if (new == NULL) {
        return -1;
    }
    int rc = PySequence_SetItem(seq, k, new);
    Py_DECREF(new);
    return rc;
}

/* `seq.append(item)`, fast for lists. */
static int
append(PyObject *seq, PyObject *item)
{
    if (PyList_CheckExact(seq)) {
        return PyList_Append(seq, item);
    }
    PyObject *r = PyObject_CallMethod(seq, "append", "O", item);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* A new one-item list. */
static PyObject *
list_of(PyObject *item)
{
    PyObject *l = PyList_New(1);
    if (l != NULL) {
        Py_INCREF(item);
        PyList_SET_ITEM(l, 0, item);
    }
    return l;
}

/* The subject `i` is due at `due_at`: `Calendar.file` of one subject, as Scalar.run does. */
static int
file_one(PyObject *i, long long due_at, long long beyond, int bits, PyObject *tick_map,
         PyObject *pending_map, PyObject *heap)
{
    int rc = -1;
    PyObject *key = NULL, *chunks, *last = NULL, *fresh = NULL, *pair = NULL, *ticks = NULL;
    if (due_at < beyond) {
        key = PyLong_FromLongLong(due_at);
        if (key == NULL) {
            goto done;
        }
        chunks = PyDict_GetItemWithError(tick_map, key); /* borrowed */
        if (chunks == NULL) {
            if (PyErr_Occurred()) {
                goto done;
            }
            PyObject *inner = list_of(i);
            if (inner == NULL) {
                goto done;
            }
            fresh = list_of(inner);
            Py_DECREF(inner);
            if (fresh == NULL) {
                goto done;
            }
            rc = PyDict_SetItem(tick_map, key, fresh);
            goto done;
        }
        Py_INCREF(chunks);
        last = PySequence_GetItem(chunks, -1);
        if (last == NULL) {
            Py_DECREF(chunks);
            goto done;
        }
        if (PyList_CheckExact(last)) {
            rc = PyList_Append(last, i);
        }
        else {
            fresh = list_of(i);
            rc = fresh == NULL ? -1 : append(chunks, fresh);
        }
        Py_DECREF(chunks);
        goto done;
    }
    key = PyLong_FromLongLong(due_at >> bits);
    if (key == NULL) {
        goto done;
    }
    PyObject *waiting = PyDict_GetItemWithError(pending_map, key); /* borrowed */
    ticks = PyLong_FromLongLong(due_at);
    if (ticks == NULL || (waiting == NULL && PyErr_Occurred())) {
        goto done;
    }
    if (waiting == NULL) {
        PyObject *subjects = list_of(i);
        PyObject *at = list_of(ticks);
        if (subjects == NULL || at == NULL) {
            Py_XDECREF(subjects);
            Py_XDECREF(at);
            goto done;
        }
        pair = PyTuple_Pack(2, subjects, at);
        Py_DECREF(subjects);
        Py_DECREF(at);
        if (pair == NULL || PyDict_SetItem(pending_map, key, pair) < 0) {
            goto done;
        }
        PyObject *r = PyObject_CallFunctionObjArgs(heappush, heap, key, NULL);
        if (r == NULL) {
            goto done;
        }
        Py_DECREF(r);
        rc = 0;
        goto done;
    }
    Py_INCREF(waiting);
    PyObject *first = PySequence_GetItem(waiting, 0);
    if (first != NULL) {
        rc = append(first, i);
        Py_DECREF(first);
        if (rc == 0) {
            PyObject *second = PySequence_GetItem(waiting, 1);
            rc = second == NULL ? -1 : append(second, ticks);
            Py_XDECREF(second);
        }
    }
    Py_DECREF(waiting);
done:
    Py_XDECREF(key);
    Py_XDECREF(last);
    Py_XDECREF(fresh);
    Py_XDECREF(pair);
    Py_XDECREF(ticks);
    return rc;
}

/* `subjects[i]` (new reference), with Python's IndexError. */
static PyObject *
subject_at(PyObject *subjects, Py_ssize_t i)
{
    if (PyList_CheckExact(subjects) && i >= 0 && i < PyList_GET_SIZE(subjects)) {
        PyObject *s = PyList_GET_ITEM(subjects, i);
        Py_INCREF(s);
        return s;
    }
    return PySequence_GetItem(subjects, i);
}

/* Call `f(args...)`; returns a new reference or NULL. */
static PyObject *
call(PyObject *f, PyObject *const *args, size_t n)
{
    return PyObject_Vectorcall(f, args, n, NULL);
}

/* The sinks of one move along `j`: `one`, else its collectors then its batches. */
static int
deliver(PyObject *one, PyObject *collectors, PyObject *batches, Py_ssize_t j, PyObject *ts,
        PyObject *subjects, Py_ssize_t i, PyObject *transition)
{
    if (one != Py_None) {
        PyObject *subject = subject_at(subjects, i);
        if (subject == NULL) {
            return -1;
        }
        PyObject *args[3] = {ts, subject, transition};
        PyObject *r = call(one, args, 3);
        Py_DECREF(subject);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        return 0;
    }
    PyObject *mine = PySequence_GetItem(collectors, j);
    if (mine == NULL) {
        return -1;
    }
    PyObject *fast = PySequence_Fast(mine, "collectors must be a sequence");
    Py_DECREF(mine);
    if (fast == NULL) {
        return -1;
    }
    for (Py_ssize_t c = 0; c < PySequence_Fast_GET_SIZE(fast); c++) {
        PyObject *subject = subject_at(subjects, i);
        if (subject == NULL) {
            Py_DECREF(fast);
            return -1;
        }
        PyObject *args[3] = {ts, subject, transition};
        PyObject *r = call(PySequence_Fast_GET_ITEM(fast, c), args, 3);
        Py_DECREF(subject);
        if (r == NULL) {
            Py_DECREF(fast);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(fast);
    if (batches == NULL) {
        return 0;
    }
    mine = PySequence_GetItem(batches, j);
    if (mine == NULL) {
        return -1;
    }
    fast = PySequence_Fast(mine, "batches must be a sequence");
    Py_DECREF(mine);
    if (fast == NULL) {
        return -1;
    }
    for (Py_ssize_t b = 0; b < PySequence_Fast_GET_SIZE(fast); b++) {
        PyObject *batch = PySequence_Fast_GET_ITEM(fast, b);
        PyObject *list = PyObject_GetAttr(batch, str_subjects);
        PyObject *subject = list == NULL ? NULL : subject_at(subjects, i);
        int rc = subject == NULL ? -1 : append(list, subject);
        Py_XDECREF(subject);
        Py_XDECREF(list);
        if (rc == 0) {
            list = PyObject_GetAttr(batch, str_transitions);
            rc = list == NULL ? -1 : append(list, transition);
            Py_XDECREF(list);
        }
        if (rc < 0) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* `callback(subject, transition)` as a truth value: 1, 0, or -1 on an exception. */
static int
allowed(PyObject *callback, PyObject *subjects, Py_ssize_t i, PyObject *transition)
{
    PyObject *subject = subject_at(subjects, i);
    if (subject == NULL) {
        return -1;
    }
    PyObject *args[2] = {subject, transition};
    PyObject *r = call(callback, args, 2);
    Py_DECREF(subject);
    if (r == NULL) {
        return -1;
    }
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    return ok;
}

/* An item of a list as a C index (borrowed object in *obj). */
static int
index_at(PyObject *list, Py_ssize_t k, PyObject **obj, Py_ssize_t *value)
{
    *obj = PyList_GET_ITEM(list, k);
    *value = PyNumber_AsSsize_t(*obj, PyExc_IndexError);
    return (*value == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* `after + int(wait)` for a huge wait: 1 if it reaches `horizon`, else 0 with the tick in
 * *due_at (it then fits a C integer); -1 on an exception. */
static int
late(double wait, long long after, long long horizon, long long *due_at)
{
    PyObject *w = PyLong_FromDouble(wait);
    PyObject *a = PyLong_FromLongLong(after);
    PyObject *h = PyLong_FromLongLong(horizon);
    PyObject *sum = (w == NULL || a == NULL) ? NULL : PyNumber_Add(a, w);
    int rc = -1;
    if (sum != NULL && h != NULL) {
        int ge = PyObject_RichCompareBool(sum, h, Py_GE);
        if (ge > 0) {
            rc = 1;
        }
        else if (ge == 0) {
            *due_at = PyLong_AsLongLong(sum);
            rc = (*due_at == -1 && PyErr_Occurred()) ? -1 : 0;
        }
    }
    Py_XDECREF(w);
    Py_XDECREF(a);
    Py_XDECREF(h);
    Py_XDECREF(sum);
    return rc;
}

/* One attempt of `tick`; 0, or -1 with an exception set. */
static int
attempt(PyObject *i_obj, Py_ssize_t i, PyObject *u_obj, PyObject *w_obj, PyObject *rows,
        PyObject *plan, PyObject *collectors, PyObject *batches, PyObject *events,
        PyObject *vetoes, int *state, Py_ssize_t n_state, PyObject *subjects, PyObject *ts,
        long long after, long long horizon, long long beyond, int bits, PyObject *tick_map,
        PyObject *pending_map, PyObject *heap, int draw_choice)
{
    if (i < 0 || i >= n_state) {
        PyErr_SetString(PyExc_IndexError, "array index out of range");
        return -1;
    }
    Py_ssize_t s = state[i];
    if (s < 0 || s >= PyList_GET_SIZE(rows)) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return -1;
    }
    PyObject *r = PyList_GET_ITEM(rows, s);
    if (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 4 ||
        !PyList_CheckExact(PyTuple_GET_ITEM(r, 0))) {
        PyErr_SetString(PyExc_TypeError, "tick(): a row must be (list, int, int, factor)");
        return -1;
    }
    PyObject *row = PyTuple_GET_ITEM(r, 0);
    Py_ssize_t base = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 1));
    Py_ssize_t n_out = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 2));
    PyObject *inv = PyTuple_GET_ITEM(r, 3);
    if (PyErr_Occurred()) {
        return -1;
    }
    Py_INCREF(inv);
    int rc = -1;
    Py_ssize_t local = 0;
    if (draw_choice) {
        local = bisect_row(row, u_obj, PyFloat_AsDouble(u_obj));
        if (local < 0) {
            goto done;
        }
    }
    if (local < n_out) {
        Py_ssize_t j = base + local;
        if (j < 0 || j >= PyList_GET_SIZE(plan) ||
            !PyTuple_CheckExact(PyList_GET_ITEM(plan, j)) ||
            PyTuple_GET_SIZE(PyList_GET_ITEM(plan, j)) != 5) {
            PyErr_SetString(PyExc_IndexError, "tick(): no plan entry for the transition");
            goto done;
        }
        PyObject *entry = PyList_GET_ITEM(plan, j);
        Py_INCREF(entry);
        PyObject *transition = PyTuple_GET_ITEM(entry, 0);
        PyObject *callback = PyTuple_GET_ITEM(entry, 1);
        PyObject *one = PyTuple_GET_ITEM(entry, 2);
        int ok = callback == Py_None ? 1 : allowed(callback, subjects, i, transition);
        if (ok < 0) {
            Py_DECREF(entry);
            goto done;
        }
        if (!ok) {
            int bad = count_one(vetoes, j);
            Py_DECREF(entry);
            if (bad < 0) {
                goto done;
            }
        }
        else {
            if (deliver(one, collectors, batches, j, ts, subjects, i, transition) < 0 ||
                count_one(events, j) < 0) {
                Py_DECREF(entry);
                goto done;
            }
            long target = PyLong_AsLong(PyTuple_GET_ITEM(entry, 3));
            if (target == -1 && PyErr_Occurred()) {
                Py_DECREF(entry);
                goto done;
            }
            state[i] = (int)target;
            Py_SETREF(inv, Py_NewRef(PyTuple_GET_ITEM(entry, 4)));
            Py_DECREF(entry);
        }
    }
    if (inv == Py_None) {
        rc = 0; /* never moves again */
        goto done;
    }
    double factor = PyFloat_AsDouble(inv);
    if (factor == -1.0 && PyErr_Occurred()) {
        goto done;
    }
    long long due_at = after;
    if (factor != 0.0) {
        double w = PyFloat_AsDouble(w_obj);
        if (w == -1.0 && PyErr_Occurred()) {
            goto done;
        }
        double wait = (w == 0.0 ? -w : log1p(-w)) * factor;
        if (!isfinite(wait)) {
            PyObject *x = PyLong_FromDouble(wait); /* raises as int() does */
            Py_XDECREF(x);
            goto done;
        }
        if (wait >= 4e18) {
            /* Too near a C integer's limit: compare as Python ints, as int() would. */
            int beyond_horizon = late(wait, after, horizon, &due_at);
            if (beyond_horizon != 0) {
                rc = beyond_horizon > 0 ? 0 : -1;
                goto done;
            }
        }
        else {
            due_at = after + (long long)wait;
        }
    }
    if (due_at >= horizon) {
        rc = 0;
        goto done;
    }
    rc = file_one(i_obj, due_at, beyond, bits, tick_map, pending_map, heap);
done:
    Py_DECREF(inv);
    return rc;
}

static int
as_ll(PyObject *o, long long *v)
{
    *v = PyLong_AsLongLong(o);
    return (*v == -1 && PyErr_Occurred()) ? -1 : 0;
}

PyDoc_STRVAR(tick_doc,
             "tick(due, draws, waits, rows, plan, collectors, batches, events, vetoes, state,\n"
             "     subjects, ts, after, horizon, beyond, bits, tick_map, pending_map, heap,\n"
             "     draw_choice)\n\n"
             "The attempts of one tick of `Scalar.run` without resources (its Python loop).");

static PyObject *
kernel_tick(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 20) {
        PyErr_SetString(PyExc_TypeError, "tick() takes 20 arguments");
        return NULL;
    }
    PyObject *due = args[0], *draws = args[1], *waits = args[2], *rows = args[3];
    PyObject *plan = args[4], *collectors = args[5], *batches = args[6];
    PyObject *events = args[7], *vetoes = args[8], *state_obj = args[9];
    PyObject *subjects = args[10], *ts = args[11];
    PyObject *tick_map = args[16], *pending_map = args[17], *heap = args[18];
    long long after, horizon, beyond, bits_ll;
    if (as_ll(args[12], &after) < 0 || as_ll(args[13], &horizon) < 0 ||
        as_ll(args[14], &beyond) < 0 || as_ll(args[15], &bits_ll) < 0) {
        return NULL;
    }
    int draw_choice = PyObject_IsTrue(args[19]);
    if (draw_choice < 0) {
        return NULL;
    }
    if (!PyList_CheckExact(due) || !PyList_CheckExact(draws) || !PyList_CheckExact(waits) ||
        !PyList_CheckExact(rows) || !PyList_CheckExact(plan) || !PyDict_CheckExact(tick_map) ||
        !PyDict_CheckExact(pending_map)) {
        PyErr_SetString(PyExc_TypeError, "tick(): due, draws, waits, rows, plan must be lists, "
                                         "tick_map and pending_map dicts");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(state_obj, &view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (view.itemsize != sizeof(int) || view.format == NULL || strcmp(view.format, "i") != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "tick(): state must be an array('i')");
        return NULL;
    }
    int *state = (int *)view.buf;
    Py_ssize_t n_state = view.len / (Py_ssize_t)sizeof(int);
    PyObject *result = Py_None;
    for (Py_ssize_t k = 0;; k++) {
        /* zip(due, draws, waits), read afresh: a callback may change the lists. */
        if (k >= PyList_GET_SIZE(due) || k >= PyList_GET_SIZE(draws) ||
            k >= PyList_GET_SIZE(waits)) {
            break;
        }
        PyObject *i_obj, *u_obj = PyList_GET_ITEM(draws, k), *w_obj = PyList_GET_ITEM(waits, k);
        Py_ssize_t i;
        if (index_at(due, k, &i_obj, &i) < 0) {
            result = NULL;
            break;
        }
        Py_INCREF(i_obj);
        Py_INCREF(u_obj);
        Py_INCREF(w_obj);
        int rc = attempt(i_obj, i, u_obj, w_obj, rows, plan, collectors, batches, events,
                         vetoes, state, n_state, subjects, ts, after, horizon, beyond,
                         (int)bits_ll, tick_map, pending_map, heap, draw_choice);
        Py_DECREF(i_obj);
        Py_DECREF(u_obj);
        Py_DECREF(w_obj);
        if (rc < 0) {
            result = NULL;
            break;
        }
    }
    PyBuffer_Release(&view);
    return Py_XNewRef(result);
}

/* Ask the cache for `subjects[due[k]]` (its slot, its header and the words before it, where
 * CPython keeps an instance's attribute pointers), if there is such a subject. */
static inline void
prefetch_subject(PyObject *subjects, PyObject *due, Py_ssize_t k)
{
    if (k >= PyList_GET_SIZE(due) || !PyList_CheckExact(subjects)) {
        return;
    }
    PyObject *i_obj = PyList_GET_ITEM(due, k);
    if (!PyLong_CheckExact(i_obj)) {
        return;
    }
    Py_ssize_t i = PyLong_AsSsize_t(i_obj);
    if (i < 0 || i >= PyList_GET_SIZE(subjects)) {
        PyErr_Clear();
        return;
    }
    PyObject *subject = PyList_GET_ITEM(subjects, i);
    PREFETCH_ADDRESS(subject);
    PREFETCH_ADDRESS((char *)subject - 4 * sizeof(void *));
}

/* Set `routes.partial = (k, vetoed, [])` while keeping the pending exception. */
static void
mark_partial(PyObject *routes, Py_ssize_t k, PyObject *vetoed)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *none = PyList_New(0);
    PyObject *partial = none == NULL ? NULL : Py_BuildValue("(nOO)", k, vetoed, none);
    Py_XDECREF(none);
    if (partial == NULL || PyObject_SetAttr(routes, str_partial, partial) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(partial);
    PyErr_Restore(type, value, tb);
}

PyDoc_STRVAR(run_plain_doc, "run_plain(due, chosen, subjects, plan, routes, ts) -> vetoed\n\n"
                            "`attempts._run_plain` (its Python loop).");

static PyObject *
kernel_run_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "run_plain() takes 6 arguments");
        return NULL;
    }
    PyObject *due = args[0], *chosen = args[1], *subjects = args[2], *plan = args[3];
    PyObject *routes = args[4], *ts = args[5];
    if (!PyList_CheckExact(due) || !PyList_CheckExact(chosen) || !PyList_CheckExact(plan)) {
        PyErr_SetString(PyExc_TypeError, "run_plain(): due, chosen and plan must be lists");
        return NULL;
    }
    PyObject *vetoed = PyList_New(0);
    if (vetoed == NULL) {
        return NULL;
    }
    PyObject *collectors = PyObject_GetAttrString(routes, "collectors");
    if (collectors == NULL) {
        Py_DECREF(vetoed);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(due);
    if (PyList_GET_SIZE(chosen) != n) {
        PyErr_SetString(PyExc_ValueError, "run_plain(): due and chosen differ in length");
        goto fail;
    }
    for (Py_ssize_t k = 0; k < n && k < PyList_GET_SIZE(due) && k < PyList_GET_SIZE(chosen);
         k++) {
        prefetch_subject(subjects, due, k + PREFETCH);
        PyObject *i_obj, *j_obj;
        Py_ssize_t i, j;
        if (index_at(due, k, &i_obj, &i) < 0 || index_at(chosen, k, &j_obj, &j) < 0) {
            goto fail_at;
        }
        PyObject *subject = subject_at(subjects, i);
        if (subject == NULL) {
            goto fail_at;
        }
        PyObject *entry = PySequence_GetItem(plan, j);
        if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) < 3) {
            if (entry != NULL) {
                PyErr_SetString(PyExc_TypeError, "run_plain(): bad plan entry");
            }
            Py_XDECREF(entry);
            Py_DECREF(subject);
            goto fail_at;
        }
        PyObject *transition = PyTuple_GET_ITEM(entry, 0);
        PyObject *callback = PyTuple_GET_ITEM(entry, 1);
        PyObject *one = PyTuple_GET_ITEM(entry, 2);
        int ok = 1;
        if (callback != Py_None) {
            PyObject *cargs[2] = {subject, transition};
            PyObject *r = call(callback, cargs, 2);
            ok = r == NULL ? -1 : PyObject_IsTrue(r);
            Py_XDECREF(r);
        }
        int rc = 0;
        if (ok > 0) {
            if (one != Py_None) {
                PyObject *oargs[3] = {ts, subject, transition};
                PyObject *r = call(one, oargs, 3);
                rc = r == NULL ? -1 : 0;
                Py_XDECREF(r);
            }
            else {
                /* The subject object taken once, as the Python loop does. */
                PyObject *single = PyList_New(1);
                if (single == NULL) {
                    rc = -1;
                }
                else {
                    Py_INCREF(subject);
                    PyList_SET_ITEM(single, 0, subject);
                    rc = deliver(Py_None, collectors, NULL, j, ts, single, 0, transition);
                    Py_DECREF(single);
                }
            }
        }
        else if (ok == 0) {
            PyObject *kk = PyLong_FromSsize_t(k);
            rc = kk == NULL ? -1 : PyList_Append(vetoed, kk);
            Py_XDECREF(kk);
        }
        Py_DECREF(entry);
        Py_DECREF(subject);
        if (ok < 0 || rc < 0) {
            mark_partial(routes, k, vetoed);
            goto fail;
        }
        continue;
    fail_at:
        mark_partial(routes, k, vetoed);
        goto fail;
    }
    Py_DECREF(collectors);
    return vetoed;
fail:
    Py_DECREF(collectors);
    Py_DECREF(vetoed);
    return NULL;
}

/* A C-contiguous one-dimensional buffer of `itemsize`-byte items of one of `formats`. */
static int
vector(PyObject *o, Py_buffer *view, Py_ssize_t itemsize, const char *formats, const char *name)
{
    if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    const char *f = view->format == NULL ? "B" : view->format;
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') {
        f++;
    }
    if (view->ndim != 1 || view->itemsize != itemsize || f[0] == '\0' || f[1] != '\0' ||
        strchr(formats, f[0]) == NULL) {
        PyErr_Format(PyExc_TypeError, "gather(): %s must be a 1-d array of %zd-byte items (%s)",
                     name, itemsize, formats);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(gather_doc,
             "gather(subjects, order, due, chosen, moved, mask) -> (subjects, transitions)\n\n"
             "Per position k in creation order with moved[k], mask[chosen[k]] times\n"
             "subjects[due[k]] and order[chosen[k]] (int64 arrays due, chosen, mask; bool moved).");

static PyObject *
kernel_gather(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "gather() takes 6 arguments");
        return NULL;
    }
    PyObject *subjects = args[0], *order = args[1];
    if (!PyList_CheckExact(subjects) || !PyList_CheckExact(order)) {
        PyErr_SetString(PyExc_TypeError, "gather(): subjects and order must be lists");
        return NULL;
    }
    Py_buffer due, chosen, moved, mask;
    if (vector(args[2], &due, 8, "lq", "due") < 0) {
        return NULL;
    }
    if (vector(args[3], &chosen, 8, "lq", "chosen") < 0) {
        PyBuffer_Release(&due);
        return NULL;
    }
    if (vector(args[4], &moved, 1, "?", "moved") < 0) {
        PyBuffer_Release(&due);
        PyBuffer_Release(&chosen);
        return NULL;
    }
    if (vector(args[5], &mask, 8, "lq", "mask") < 0) {
        PyBuffer_Release(&due);
        PyBuffer_Release(&chosen);
        PyBuffer_Release(&moved);
        return NULL;
    }
    const long long *d = due.buf, *c = chosen.buf, *m = mask.buf;
    const char *mv = moved.buf;
    Py_ssize_t n = due.shape[0], n_mask = mask.shape[0];
    PyObject *out_subjects = NULL, *out_transitions = NULL, *result = NULL;
    if (chosen.shape[0] != n || moved.shape[0] != n) {
        PyErr_SetString(PyExc_ValueError, "gather(): due, chosen and moved differ in length");
        goto done;
    }
    /* First the count, then the lists filled in place. */
    Py_ssize_t total = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (d[k] < 0 || d[k] >= PyList_GET_SIZE(subjects)) { /* all checked: see prefetch */
            PyErr_SetString(PyExc_IndexError, "gather(): subject index out of range");
            goto done;
        }
        if (!mv[k]) {
            continue;
        }
        if (c[k] < 0 || c[k] >= n_mask || c[k] >= PyList_GET_SIZE(order)) {
            PyErr_SetString(PyExc_IndexError, "gather(): transition index out of range");
            goto done;
        }
        if (m[c[k]] > 0) {
            total += (Py_ssize_t)m[c[k]];
        }
    }
    out_subjects = PyList_New(total);
    out_transitions = PyList_New(total);
    if (out_subjects == NULL || out_transitions == NULL) {
        goto done;
    }
    Py_ssize_t at = 0;
    PyObject **items = ((PyListObject *)subjects)->ob_item;
    for (Py_ssize_t k = 0; k < n; k++) {
        /* Subjects are spread over memory: fetch the list slots and then the objects
         * (their reference counts) ahead of use, or each one waits for a cache miss. */
        if (k + 2 * PREFETCH < n) {
            PREFETCH_ADDRESS(&items[d[k + 2 * PREFETCH]]);
        }
        if (k + PREFETCH < n) {
            PREFETCH_ADDRESS(items[d[k + PREFETCH]]);
        }
        if (!mv[k]) {
            continue;
        }
        PyObject *subject = items[d[k]];
        PyObject *transition = PyList_GET_ITEM(order, c[k]);
        for (long long r = 0; r < m[c[k]]; r++, at++) {
            Py_INCREF(subject);
            PyList_SET_ITEM(out_subjects, at, subject);
            Py_INCREF(transition);
            PyList_SET_ITEM(out_transitions, at, transition);
        }
    }
    result = PyTuple_Pack(2, out_subjects, out_transitions);
done:
    Py_XDECREF(out_subjects);
    Py_XDECREF(out_transitions);
    PyBuffer_Release(&due);
    PyBuffer_Release(&chosen);
    PyBuffer_Release(&moved);
    PyBuffer_Release(&mask);
    return result;
}


/* ---- json_lines: the default JSON record's lines of a tick, fields read in C ----------- */

/* The lines are written straight into the bytes object returned (no copy at the end). */
typedef struct {
    PyObject *bytes; /* NULL until the first write */
    char *data;
    Py_ssize_t size;
    Py_ssize_t used;
} Out;

/* Room for `n` more bytes: 0, or -1 with an error set. */
static int
out_reserve(Out *out, Py_ssize_t n)
{
    if (out->used + n <= out->size) {
        return 0;
    }
    Py_ssize_t size = out->size ? out->size : 1 << 16;
    while (out->used + n > size) {
        size *= 2;
    }
    if (out->bytes == NULL) {
        out->bytes = PyBytes_FromStringAndSize(NULL, size);
    }
    else if (_PyBytes_Resize(&out->bytes, size) < 0) {
        out->bytes = NULL; /* freed by the failed resize */
    }
    if (out->bytes == NULL) {
        return -1;
    }
    out->data = PyBytes_AS_STRING(out->bytes);
    out->size = size;
    return 0;
}

static int
out_put(Out *out, const char *text, Py_ssize_t n)
{
    if (out->used + n > out->size && out_reserve(out, n) < 0) {
        return -1;
    }
    memcpy(out->data + out->used, text, (size_t)n);
    out->used += n;
    return 0;
}

/* The bytes written (a new reference), or NULL with an error set. */
static PyObject *
out_finish(Out *out)
{
    if (out->bytes == NULL) {
        return PyBytes_FromStringAndSize("", 0);
    }
    PyObject *bytes = out->bytes;
    out->bytes = NULL;
    if (_PyBytes_Resize(&bytes, out->used) < 0) {
        return NULL;
    }
    return bytes;
}

static int
out_bytes(Out *out, PyObject *bytes)
{
    return out_put(out, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

/* n in decimal, as int.__repr__ writes it (snprintf's format parsing cost more than the
   digits on the per-event path). */
static int
put_decimal(Out *out, long long n)
{
    char digits[24];
    char *end = digits + sizeof digits, *p = end;
    /* The magnitude as unsigned: -LLONG_MIN does not fit a long long. */
    unsigned long long m = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    if (n < 0) {
        *--p = '-';
    }
    return out_put(out, p, end - p);
}

/* An int of at most one internal digit, read without the general conversion (CPython's
   own compact-int accessors on 3.12+, the digit itself on 3.11): 1 and *n set, or 0. */
static inline int
small_int(PyObject *value, long long *n)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)value)) {
        *n = (long long)PyUnstable_Long_CompactValue((PyLongObject *)value);
        return 1;
    }
    return 0;
#else
    Py_ssize_t size = Py_SIZE(value);
    if (size >= -1 && size <= 1) {
        *n = (long long)size * (long long)((PyLongObject *)value)->ob_digit[0];
        return 1;
    }
    return 0;
#endif
}

/* One field value as json.dumps(..., ensure_ascii=False, allow_nan=False) writes it:
   1 written, 0 not a value this function writes (the caller falls back), -1 error. */
static int
put_value(Out *out, PyObject *value)
{
    if (value == Py_None) {
        return out_put(out, "null", 4) < 0 ? -1 : 1;
    }
    if (value == Py_True) {
        return out_put(out, "true", 4) < 0 ? -1 : 1;
    }
    if (value == Py_False) {
        return out_put(out, "false", 5) < 0 ? -1 : 1;
    }
    if (PyLong_CheckExact(value)) {
        long long n;
        if (small_int(value, &n)) {
            return put_decimal(out, n) < 0 ? -1 : 1;
        }
        int overflow = 0;
        n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow == 0) {
            if (n == -1 && PyErr_Occurred()) {
                return -1;
            }
            return put_decimal(out, n) < 0 ? -1 : 1;
        }
        PyObject *text = PyObject_Repr(value); /* int.__repr__, as json.dumps */
        if (text == NULL) {
            return -1;
        }
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
        int done = utf8 == NULL ? -1 : (out_put(out, utf8, len) < 0 ? -1 : 1);
        Py_DECREF(text);
        return done;
    }
    if (PyFloat_CheckExact(value)) {
        double x = PyFloat_AS_DOUBLE(value);
        if (!isfinite(x)) {
            return 0; /* json.dumps refuses it (allow_nan=False): the slow path says so */
        }
        char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) {
            return -1;
        }
        int done = out_put(out, text, (Py_ssize_t)strlen(text)) < 0 ? -1 : 1;
        PyMem_Free(text);
        return done;
    }
    if (PyUnicode_CheckExact(value)) {
        if (!PyUnicode_IS_ASCII(value)) {
            return 0;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(value);
        const unsigned char *chars = PyUnicode_1BYTE_DATA(value);
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = chars[i];
            if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f) {
                return 0; /* escapes: the slow path writes them */
            }
        }
        if (out_put(out, "\"", 1) < 0 || out_put(out, (const char *)chars, len) < 0 ||
            out_put(out, "\"", 1) < 0) {
            return -1;
        }
        return 1;
    }
    return 0;
}

/* A hint to the cache: the object's own line and the one before it (on CPython 3.11 a
   class instance keeps the pointer to its attribute values two words before its GC header). */
static inline void
prefetch_object(PyObject *obj)
{
    __builtin_prefetch(obj);
    __builtin_prefetch((char *)obj - 4 * sizeof(PyObject *));
}

/* On CPython 3.11 an instance of a class with a managed dict keeps its attribute values in
   an array pointed to four words before the object (None when it has none, or on other
   versions, which then skip these hints). */
static inline PyObject **
values_of(PyObject *obj)
{
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    if (PyType_HasFeature(Py_TYPE(obj), Py_TPFLAGS_MANAGED_DICT)) {
        return *(((PyObject ***)obj) - 4);
    }
#else
    (void)obj;
#endif
    return NULL;
}

/* A hint to the cache for a subject a few events ahead: its values array (the pointer to
   it is read from the object's pre-header, part of its allocation, asked for earlier). */
static inline void
prefetch_values(PyObject *obj)
{
    PyObject **values = values_of(obj);
    if (values != NULL) {
        __builtin_prefetch(values);
    }
}

/* Later, the value objects themselves (the values array asked for earlier). Only the first
   five slots are read: on 3.11 a values array has room for its shared keys' usable
   fraction, never fewer than five slots (an 8-slot table), each NULL or a value. */
static inline void
prefetch_fields(PyObject *obj)
{
    PyObject **values = values_of(obj);
    if (values != NULL) {
        for (int i = 0; i < 5; i++) {
            if (values[i] != NULL) {
                __builtin_prefetch(values[i]);
            }
        }
    }
}

PyDoc_STRVAR(json_lines_doc,
"json_lines(heads, transitions, subjects, kind, names, keys, /) -> bytes | None\n\n"
"Each event's line: heads[transitions[k]], then subjects[k]'s fields `names` as a JSON\n"
"object (keys[i] is the encoded '{\"name\":' or ',\"name\":' before field i), then '}\\n'.\n"
"None when a subject is not exactly of type `kind`, a transition has no head, or a value is\n"
"not one this writes exactly as json.dumps would (the caller takes the slow path).");

static PyObject *
kernel_json_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyDict_Check(args[0]) || !PyList_Check(args[1]) ||
        !PyList_Check(args[2]) || !PyType_Check(args[3]) || !PyTuple_Check(args[4]) ||
        !PyTuple_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "json_lines(heads: dict, transitions: list, subjects: list, kind: type, "
                        "names: tuple, keys: tuple)");
        return NULL;
    }
    PyObject *heads = args[0], *transitions = args[1], *subjects = args[2];
    PyTypeObject *kind = (PyTypeObject *)args[3];
    PyObject *names = args[4], *keys = args[5];
    Py_ssize_t n = PyList_GET_SIZE(subjects), fields = PyTuple_GET_SIZE(names);
    if (PyList_GET_SIZE(transitions) != n || PyTuple_GET_SIZE(keys) != fields) {
        PyErr_SetString(PyExc_ValueError,
                        "json_lines: transitions and subjects, names and keys differ in length");
        return NULL;
    }
    Out out = {NULL, NULL, 0, 0};
    /* A guess at the tick's size (a default record's line is about this long): one
       allocation for most ticks, growth by doubling past it. */
    if (n > 0 && out_reserve(&out, n * 160) < 0) {
        goto fallback_or_error;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        /* The subjects are scattered in memory: ask for each one's cache lines well ahead,
           then for its attribute values once its object has arrived. */
        if (k + 24 < n) {
            prefetch_object(PyList_GET_ITEM(subjects, k + 24));
        }
        if (k + 16 < n) {
            prefetch_values(PyList_GET_ITEM(subjects, k + 16));
        }
        if (k + 8 < n) {
            prefetch_fields(PyList_GET_ITEM(subjects, k + 8));
        }
        PyObject *subject = PyList_GET_ITEM(subjects, k);
        if (Py_TYPE(subject) != kind) {
            goto fallback_or_error;
        }
        /* A borrowed reference; the dict holds it. Transitions hash by identity. */
        PyObject *head = PyDict_GetItemWithError(heads, PyList_GET_ITEM(transitions, k));
        if (head == NULL || !PyBytes_Check(head) || out_bytes(&out, head) < 0) {
            goto fallback_or_error;
        }
        if (fields == 0 && out_put(&out, "{", 1) < 0) {
            goto fallback_or_error;
        }
        for (Py_ssize_t i = 0; i < fields; i++) {
            PyObject *key = PyTuple_GET_ITEM(keys, i);
            if (!PyBytes_Check(key) || out_bytes(&out, key) < 0) {
                goto fallback_or_error;
            }
            PyObject *value = PyObject_GetAttr(subject, PyTuple_GET_ITEM(names, i));
            if (value == NULL) {
                goto fallback_or_error;
            }
            int written = put_value(&out, value);
            Py_DECREF(value);
            if (written <= 0) {
                goto fallback_or_error;
            }
        }
        if (out_put(&out, "}}\n", 3) < 0) {
            goto fallback_or_error;
        }
    }
    return out_finish(&out);

fallback_or_error:
    Py_XDECREF(out.bytes);
    /* Any failure (a field that raises, a value to escape) is the slow path's to meet at
       its event, with its own message: no error escapes from here. */
    PyErr_Clear();
    Py_RETURN_NONE;
}

static PyMethodDef kernel_methods[] = {
    {"tick", (PyCFunction)(void (*)(void))kernel_tick, METH_FASTCALL, tick_doc},
    {"run_plain", (PyCFunction)(void (*)(void))kernel_run_plain, METH_FASTCALL, run_plain_doc},
    {"gather", (PyCFunction)(void (*)(void))kernel_gather, METH_FASTCALL, gather_doc},
    {"json_lines", (PyCFunction)(void (*)(void))kernel_json_lines, METH_FASTCALL, json_lines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT,
    "dogesim.engine._kernel",
    "The engine's per-attempt loops in C (see dogesim.engine.kernel).",
    -1,
    kernel_methods,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    PyObject *heapq = PyImport_ImportModule("heapq");
    if (heapq == NULL) {
        return NULL;
    }
    heappush = PyObject_GetAttrString(heapq, "heappush");
    Py_DECREF(heapq);
    str_subjects = PyUnicode_InternFromString("subjects");
    str_transitions = PyUnicode_InternFromString("transitions");
    str_partial = PyUnicode_InternFromString("partial");
    one_obj = PyLong_FromLong(1);
    if (heappush == NULL || str_subjects == NULL || str_transitions == NULL ||
        str_partial == NULL || one_obj == NULL) {
        return NULL;
    }
    return PyModule_Create(&kernel_module);
}
