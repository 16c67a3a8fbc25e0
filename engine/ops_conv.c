/* ops_conv.c -- conv2d: stub until the kernels land. */
#include "internal.h"

int qt__op_conv(qt_opctx *c, int action)
{
    return qt__shape_fail(c, "conv2d is not implemented yet");
}
