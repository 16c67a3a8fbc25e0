/* simd.h -- private to engine/: run-time dispatch of hot loops.
 *
 * A function marked QT_CLONES is compiled three times (AVX-512, AVX2 and
 * the portable baseline) and the loader picks the best the CPU has
 * (GCC target_clones; quant/kernels.c does the same). Sanitizer builds and
 * other compilers get the portable version only. Clones must give the same
 * bits: kernels that use them avoid FMA contraction (-ffp-contract=off for
 * the whole module) and reassociation. */
#ifndef QT_ENGINE_SIMD_H
#define QT_ENGINE_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define QT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* the same for 16-bit lanes: their 512-bit forms need AVX-512BW (x86-64-v4:
 * AVX-512 F, BW, CD, DQ and VL) */
#define QT_CLONES_BW __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define QT_CLONES
#define QT_CLONES_BW
#endif

#endif
