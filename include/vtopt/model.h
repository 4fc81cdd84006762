/* include/vtopt/model.h — the C ABI of a model compiled by vtopt to a shared library (fast.so).
 * Include this header only: the library
 * needs libc, libm and pthreads. Every symbol carries the model's tag (vtopt --tag, default the
 * output name), so several models load or link into one process:
 *
 *   VTOPT_MODEL_DECLARE(mymodel)   // declares mymodel_signature, mymodel_create, ...
 *
 * Tensors are caller-owned. Inputs and outputs are given in the order of the signature; outputs
 * must be allocated by the caller with the dtype and dims the signature lists. Wrong dtypes,
 * ranks or dims return VTOPT_ERR_INPUT with a message from <tag>_last_error; nothing crashes.
 *
 * Threads. Sessions are independent: any number of threads may each create and use their own
 * session of one model at the same time (results are bit-equal to running them one after the
 * other; the weights are shared read-only). One session serves one thread at a time: while a
 * thread is inside run, reset or set of a session, the same call from another thread on that
 * session returns VTOPT_ERR_BUSY at once (last_error on the refused thread says "session busy")
 * and leaves the session untouched. state_info may be called at any time (its counts are then a
 * snapshot). destroy must not race with any other call on the same session. signature, create
 * and last_error(NULL) (the last failed create of the calling thread) are safe from any thread.
 *
 * Memory. create allocates the session's activation arena and persistent state once (runs
 * allocate nothing large); when an allocation fails, create returns VTOPT_ERR_INPUT and
 * last_error(NULL) says "out of memory ..." with the bytes asked for: never a crash. */
#ifndef VTOPT_MODEL_H
#define VTOPT_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#define VTOPT_MAX_RANK 8
/* dtype: ONNX TensorProto numbering (1 float32, 6 int32, 7 int64, 9 bool, 10 float16, ...) */
typedef struct vtopt_tensor {
  int32_t dtype;
  int32_t rank;
  int64_t dims[VTOPT_MAX_RANK];
  void *data;
  bool owned_by_library;   /* always false in this ABI */
} vtopt_tensor;

enum { VTOPT_OK = 0, VTOPT_ERR_INPUT = 2, VTOPT_ERR_INTERNAL = 3, VTOPT_ERR_BUSY = 4 };

typedef struct vtopt_session vtopt_session;

#define VTOPT_MODEL_DECLARE(tag)                                                                  \
  /* JSON: {"tag", "inputs": [{"name","dtype","dims"}...], "outputs": [...], "passes": [...]} */ \
  const char *tag##_signature(void);                                                             \
  /* threads <= 0: VTOPT_NUM_THREADS or all CPUs. Returns VTOPT_OK and *out, or an error code. */ \
  int tag##_create(int threads, vtopt_session **out);                                           \
  int tag##_run(vtopt_session *s, const vtopt_tensor *inputs, vtopt_tensor *outputs);            \
  /* A session is one stream: stateful ops (e.g. Eventful's token gates) keep state from run to  \
   * run. reset drops it: the next run computes everything ("flush"). */                          \
  int tag##_reset(vtopt_session *s);                                                             \
  /* Sets a runtime knob (e.g. "eventful.r", the gates' token budget) from the next run on, no   \
   * recompiling; an unknown name returns VTOPT_ERR_INPUT, last_error lists the valid ones. */   \
  int tag##_set(vtopt_session *s, const char *knob, double value);                               \
  /* Per-stream state: *bytes held by the session's stateful ops (allocated once, kept across     \
   * runs); *updated / *seen: token rows the gates updated / saw in runs after a flush (any may  \
   * be NULL). */                                                                                \
  int tag##_state_info(const vtopt_session *s, int64_t *bytes, int64_t *updated, int64_t *seen); \
  /* The message of the last failed call on s (or of the last failed create when s is NULL). */ \
  const char *tag##_last_error(const vtopt_session *s);                                          \
  void tag##_destroy(vtopt_session *s);

#endif
