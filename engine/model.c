/*
 * model.c -- a model by name or path: a zoo name, a checkpoint or an ONNX
 * file, told apart by content (a checkpoint starts with "QTCK").
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>

int qt_model_load(const char *spec, qt_graph **out, qt_error *err)
{
    unsigned char magic[4] = { 0 };
    *out = NULL;
    if (!spec || !*spec)
        return qt__fail(err, QT_EINVAL, -1, "no model given (a zoo name, a .qtck checkpoint "
                        "or an .onnx file)");
    for (const char *const *z = qt_zoo_names(); *z; z++)
        if (!strcmp(*z, spec)) return qt_zoo_build(spec, out, err);
    FILE *f = fopen(spec, "rb");
    if (!f) {
        int e = errno;
        return qt__fail(err, e == ENOENT ? QT_ENOENT : QT_EIO, -1,
                        "model '%s': %s (not a zoo model either: mlp, lenet5, vgg, resnet)",
                        spec, strerror(e));
    }
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "QTCK", 4))
        return qt_checkpoint_load(spec, out, err);
    return qt_onnx_load(spec, NULL, out, err);
}
