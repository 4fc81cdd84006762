/* cli.h — helpers shared by the vtopt subcommands (tools/). */
#ifndef VTOPT_CLI_H
#define VTOPT_CLI_H

#include "ir.h"

/* Prints "vtopt: " + message (fmt with one %s) + a pointer to --help; returns 2. */
int cli_usage_error(const char *fmt, const char *arg);
/* Deterministic input for graph value v (all dims must be constant): floats ~ N(0,1), integers
 * uniform in [0, 10), bools uniform. */
int cli_random_tensor(const vt_graph *g, const vt_value *v, uint64_t seed, vt_tensor *t, vt_error *e);
double cli_now_ms(void);
int cli_cmp_double(const void *a, const void *b);
/* A compiled model (fast.so) opened through its public ABI (tools/so_model.c): *g gets its
 * signature as a graph of values (inputs and outputs, no nodes); tag NULL: from the file name. */
typedef struct cli_so cli_so;
int cli_so_open(const char *path, const char *tag, int threads, vt_graph **g, cli_so **so, vt_error *e);
/* Runs one session step: outputs are allocated here (owned by the caller). */
int cli_so_run(cli_so *so, const vt_graph *g, const vt_tensor *in, vt_tensor *out, vt_error *e);
int cli_so_set(cli_so *so, const char *knob, double value, vt_error *e);
int cli_so_reset(cli_so *so, vt_error *e);
/* The session's state bytes and the gates' updated / seen rows (zeros for a library without
 * <tag>_state_info). */
void cli_so_state_info(const cli_so *so, size_t *bytes, int64_t *updated, int64_t *seen);
void cli_so_close(cli_so *so);
/* `vtopt compare`: strategies side by side (tools/compare.c). */
/* --stream [NAME=]CLIP: the name of the named symbol that is dim 0 of the streamed input (the
 * first input when no NAME), or NULL (tools/compare.c). A stream runs one frame per call, so
 * callers pin it to 1. */
const char *cli_stream_frame_symbol(const vt_graph *g, const char *stream_arg);
int cli_compare_strategies(int argc, char **argv);
/* `vtopt calibrate`: router weights and retention table for the topk pass (tools/calibrate.c). */
int cli_calibrate(int argc, char **argv);
/* `vtopt sample`: DDIM + CFG sampler over a DiT noise predictor (tools/sample.c). */
int cli_sample(int argc, char **argv);

#endif
