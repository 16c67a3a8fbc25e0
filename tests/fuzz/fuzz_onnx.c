/*
 * fuzz_onnx.c -- libFuzzer target for the ONNX loader.
 *
 * Build (clang; see tests/fuzz/README.md):
 *   CC=clang cmake -S . -B build-fuzz -DQT_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
 *   cmake --build build-fuzz -j2 --target fuzz_onnx
 *   ./build-fuzz/tests/fuzz/fuzz_onnx -max_total_time=60 corpus/
 * Every input is loaded in both modes (batched, and whole tensors as one
 * sample); a graph that loads is run forward once on zeros, so shapes the
 * loader accepted are also exercised by the kernels. Anything but a clean
 * error code is a finding: a crash, a sanitizer report or a leak.
 */
#include "engine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_once(qt_graph *g)
{
    size_t per = qt_graph_node_size(g, 0);
    qt_error err;
    const qt_tensor *out;
    if (per == 0 || per > (1u << 20)) return;      /* keep each input cheap */
    float *x = calloc(per, sizeof *x);
    if (!x) return;
    (void)qt_forward(g, NULL, x, 1, 0, &out, &err);
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int whole = 0; whole < 2; whole++) {
        qt_onnx_opts o;
        qt_graph *g = NULL;
        qt_error err;
        memset(&o, 0, sizeof o);
        o.whole = whole;
        if (qt_onnx_load_mem(data, size, &o, &g, &err) == QT_OK) {
            if (qt_graph_macs(g) < (1u << 24)) run_once(g);
            qt_graph_free(g);
        }
    }
    return 0;
}
