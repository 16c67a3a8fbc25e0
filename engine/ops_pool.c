/* ops_pool.c -- pooling and batch normalisation: stub until the kernels land. */
#include "internal.h"

int qt__op_maxpool(qt_opctx *c, int action) { return qt__shape_fail(c, "maxpool is not implemented yet"); }
int qt__op_avgpool(qt_opctx *c, int action) { return qt__shape_fail(c, "avgpool is not implemented yet"); }
int qt__op_gap(qt_opctx *c, int action) { return qt__shape_fail(c, "gap is not implemented yet"); }
int qt__op_batchnorm(qt_opctx *c, int action) { return qt__shape_fail(c, "batchnorm is not implemented yet"); }
