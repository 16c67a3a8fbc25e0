/*
 * zoo.c -- the model zoo: mlp, lenet5, vgg, resnet for 1x28x28 inputs and
 * 10 classes. Node names are what users write in configurations.
 */
#include "internal.h"

#include <stdio.h>

static const char *const names[] = { "mlp", "lenet5", "vgg", "resnet", NULL };

const char *const *qt_zoo_names(void) { return names; }

typedef struct zb {
    qt_graph *g;
    qt_error *err;
    int rc;
} zb;

static int add(zb *b, qt_op op, const char *name, int in, const qt_attr *a)
{
    if (b->rc < 0) return b->rc;
    int id = qt_graph_add(b->g, op, name, &in, 1, a, b->err);
    if (id < 0) b->rc = id;
    return id;
}

static int add2(zb *b, qt_op op, const char *name, int x, int y)
{
    int in[2] = { x, y };
    if (b->rc < 0) return b->rc;
    int id = qt_graph_add(b->g, op, name, in, 2, NULL, b->err);
    if (id < 0) b->rc = id;
    return id;
}

static int conv(zb *b, const char *name, int in, int out, int k, int stride, int pad, int bias)
{
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = pad;
    a.out = out;
    a.bias = bias;
    return add(b, QT_OP_CONV, name, in, &a);
}

static int dense(zb *b, const char *name, int in, int out)
{
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.out = out;
    a.bias = 1;
    return add(b, QT_OP_DENSE, name, in, &a);
}

static int pool(zb *b, const char *name, int in, int k)
{
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = k;
    return add(b, QT_OP_MAXPOOL, name, in, &a);
}

static int relu(zb *b, const char *name, int in) { return add(b, QT_OP_RELU, name, in, NULL); }

static int bn(zb *b, const char *name, int in)
{
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.eps = 1e-5f;
    a.momentum = 0.1f;
    return add(b, QT_OP_BATCHNORM, name, in, &a);
}

static void build_mlp(zb *b, int x)
{
    x = add(b, QT_OP_FLATTEN, "flatten", x, NULL);
    x = relu(b, "relu1", dense(b, "fc1", x, 300));
    x = relu(b, "relu2", dense(b, "fc2", x, 100));
    dense(b, "fc3", x, 10);
}

/* LeNet-5 (padded 28x28 input, as on MNIST): conv 6@5x5, pool, conv 16@5x5,
 * pool, fc 120, fc 84, fc 10 */
static void build_lenet5(zb *b, int x)
{
    x = pool(b, "pool1", relu(b, "relu1", conv(b, "conv1", x, 6, 5, 1, 2, 1)), 2);
    x = pool(b, "pool2", relu(b, "relu2", conv(b, "conv2", x, 16, 5, 1, 0, 1)), 2);
    x = add(b, QT_OP_FLATTEN, "flatten", x, NULL);
    x = relu(b, "relu3", dense(b, "fc3", x, 120));
    x = relu(b, "relu4", dense(b, "fc4", x, 84));
    dense(b, "fc5", x, 10);
}

/* a small VGG-style network: two blocks of two 3x3 convs, then two fc */
static void build_vgg(zb *b, int x)
{
    qt_attr dr;
    memset(&dr, 0, sizeof dr);
    dr.alpha = 0.3f;
    x = relu(b, "relu1_1", conv(b, "conv1_1", x, 32, 3, 1, 1, 1));
    x = relu(b, "relu1_2", conv(b, "conv1_2", x, 32, 3, 1, 1, 1));
    x = pool(b, "pool1", x, 2);
    x = relu(b, "relu2_1", conv(b, "conv2_1", x, 64, 3, 1, 1, 1));
    x = relu(b, "relu2_2", conv(b, "conv2_2", x, 64, 3, 1, 1, 1));
    x = pool(b, "pool2", x, 2);
    x = add(b, QT_OP_FLATTEN, "flatten", x, NULL);
    x = relu(b, "relu3", dense(b, "fc1", x, 256));
    x = add(b, QT_OP_DROPOUT, "drop1", x, &dr);
    dense(b, "fc2", x, 10);
}

/* a basic residual block: conv-bn-relu-conv-bn + shortcut, relu */
static int block(zb *b, const char *p, int x, int out, int stride, int project)
{
    char n[8][QT_NAME_MAX];
    const char *sfx[8] = { "conv1", "bn1", "relu1", "conv2", "bn2", "proj", "projbn", "add" };
    for (int i = 0; i < 8; i++) snprintf(n[i], QT_NAME_MAX, "%s.%s", p, sfx[i]);
    int y = conv(b, n[0], x, out, 3, stride, 1, 0);
    y = relu(b, n[2], bn(b, n[1], y));
    y = bn(b, n[4], conv(b, n[3], y, out, 3, 1, 1, 0));
    int s = x;
    if (project) s = bn(b, n[6], conv(b, n[5], x, out, 1, stride, 0, 0));
    char r[QT_NAME_MAX];
    snprintf(r, sizeof r, "%s.relu", p);
    return relu(b, r, add2(b, QT_OP_ADD, n[7], y, s));
}

/* ResNet for 28x28: stem 16, stages 16/32/64 (one block each), GAP, fc */
static void build_resnet(zb *b, int x)
{
    x = relu(b, "relu0", bn(b, "bn0", conv(b, "conv0", x, 16, 3, 1, 1, 0)));
    x = block(b, "res1", x, 16, 1, 0);
    x = block(b, "res2", x, 32, 2, 1);
    x = block(b, "res3", x, 64, 2, 1);
    x = add(b, QT_OP_GAP, "gap", x, NULL);
    dense(b, "fc", x, 10);
}

int qt_zoo_build(const char *name, qt_graph **out, qt_error *err)
{
    zb b = { qt_graph_new(), err, 0 };
    if (!b.g) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    int x = qt_graph_input(b.g, "input", 1, 28, 28, err);
    if (x < 0) { qt_graph_free(b.g); return x; }
    if (!strcmp(name, "mlp")) build_mlp(&b, x);
    else if (!strcmp(name, "lenet5")) build_lenet5(&b, x);
    else if (!strcmp(name, "vgg")) build_vgg(&b, x);
    else if (!strcmp(name, "resnet")) build_resnet(&b, x);
    else {
        qt_graph_free(b.g);
        return qt__fail(err, QT_ENOENT, -1, "unknown model '%s' (zoo: mlp, lenet5, vgg, resnet)", name);
    }
    if (b.rc < 0) { qt_graph_free(b.g); return b.rc; }
    *out = b.g;
    return QT_OK;
}
