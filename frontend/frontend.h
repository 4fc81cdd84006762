/* frontend.h — reading and writing models and tensors: ONNX (protobuf-c, generated at build time
 * from the system onnx.proto), .npy, and ONNX TensorProto .pb files. */
#ifndef VTOPT_FRONTEND_H
#define VTOPT_FRONTEND_H

#include "ir.h"

/* Parses an ONNX model into a graph: initializers (raw and typed fields), Constant nodes (become
 * constant values), external data (mmapped; paths confined to the model's folder), opset
 * imports, inputs/outputs with symbolic dims, value_info. Nodes are topologically sorted; shapes
 * are NOT inferred yet (see vt_graph_prepare). Errors name the file, node and op. */
int vt_onnx_load(const char *path, vt_graph **out, vt_error *e);
/* The same from memory; path is used in messages and base_dir for external data (NULL: none). */
int vt_onnx_load_buffer(const void *buf, size_t len, const char *path, const char *base_dir,
                        vt_graph **out, vt_error *e);
/* Writes a valid ONNX model (constants as initializers, raw_data). */
int vt_onnx_save(const vt_graph *g, const char *path, vt_error *e);

/* .npy (version 1.0/2.0/3.0, little-endian, C order; f16/f32/f64, i8..i64, u8..u64, bool). */
int vt_npy_read(const char *path, vt_tensor *t, vt_error *e);
int vt_npy_write(const char *path, const vt_tensor *t, vt_error *e);
/* A serialized TensorProto (ONNX test data). *name (malloc'd, may be NULL) gets its name. */
int vt_tensorproto_read(const char *path, vt_tensor *t, char **name, vt_error *e);

#endif
