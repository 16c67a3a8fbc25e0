/*
 * ops_shape.c -- element-wise ops with broadcasting (sub, div), prelu,
 * transpose, pad, logsoftmax and constants.
 */
#include "internal.h"

#define STUB(NAME) \
int NAME(qt_opctx *c, int action) { (void)action; return qt__shape_fail(c, "not implemented yet"); }
STUB(qt__op_sub)
STUB(qt__op_div)
STUB(qt__op_prelu)
STUB(qt__op_transpose)
STUB(qt__op_pad)
STUB(qt__op_logsoftmax)
STUB(qt__op_const)
