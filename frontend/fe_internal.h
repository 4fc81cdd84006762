/* fe_internal.h — private helpers shared by the frontend's .c files (not part of the API):
 * TensorProto decoding, protobuf pre-checks and small file utilities. */
#ifndef VTOPT_FE_INTERNAL_H
#define VTOPT_FE_INTERNAL_H

#include "ir.h"
#include "onnx.pb-c.h"

/* Largest model file protobuf-c (and ONNX) accept; bigger models must use external data. */
#define FE_PROTO_MAX ((size_t)INT32_MAX)
/* Nesting limit for protobuf messages (graphs in attributes nest recursively). */
#define FE_PROTO_MAX_DEPTH 64

/* Checks that buf is well-formed protobuf wire data for message type desc, with nesting at most
 * FE_PROTO_MAX_DEPTH, before protobuf-c (which recurses without limit) unpacks it. Returns 0 or
 * -1 with a reason in why. */
int fe_proto_precheck(const void *buf, size_t len, const ProtobufCMessageDescriptor *desc,
                      char *why, size_t why_len);

/* Element type of an ONNX data_type, or VT_UNDEFINED if vtopt does not support it. */
vt_dtype fe_dtype_from_onnx(int32_t dt);

/* Fills t's dtype, rank and dims from a TensorProto and checks them (supported dtype, rank,
 * non-negative dims, no overflow of the byte size). *nbytes gets the data size. Errors are
 * "FILE: WHAT: reason" with what e.g. "initializer 'w'". */
int fe_tensor_header(const Onnx__TensorProto *tp, const char *file, const char *what,
                     vt_tensor *t, size_t *nbytes, vt_error *e);
/* Fills t->data with a malloc'd buffer (t->owned = true) holding the tensor's data from raw_data
 * (taken over from the unpacked message without a copy) or the typed fields. Call after
 * fe_tensor_header; external data is the caller's (this fails for it). */
int fe_tensor_data(Onnx__TensorProto *tp, const char *file, const char *what, vt_tensor *t,
                   size_t nbytes, vt_error *e);

/* Reads a whole file into a malloc'd buffer (at most max bytes). Errors name the file. */
int fe_read_file(const char *path, size_t max, void **buf, size_t *len, vt_error *e);

/* vt_onnx_save with a chosen threshold: when the constants' bytes reach ext_min_total, constants
 * of at least 1 KiB go to an external data file "<model file name>.data" next to the model
 * (vt_onnx_save uses 1 GiB; tests use 0). */
int fe_onnx_save_ext(const vt_graph *g, const char *path, size_t ext_min_total, vt_error *e);

/* Formats dims as "[2, 3]" into buf. */
const char *fe_dims_str(int32_t rank, const int64_t *dims, char *buf, size_t n);

#endif
