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
/* `vtopt compare`: strategies side by side (tools/compare.c). */
/* --stream [NAME=]CLIP: the name of the named symbol that is dim 0 of the streamed input (the
 * first input when no NAME), or NULL (tools/compare.c). A stream runs one frame per call, so
 * callers pin it to 1. */
const char *cli_stream_frame_symbol(const vt_graph *g, const char *stream_arg);
int cli_compare_strategies(int argc, char **argv);

#endif
