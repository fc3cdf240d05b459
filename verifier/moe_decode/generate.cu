// fill_bf16: synthetic bf16 tensors generated in place on the device.
//
// What it computes: out[i] = ns_rng_bf16(seed, stream, i, scale_log2) for
// i in [0, n): a bell-shaped value with std ~0.577 * 2^scale_log2 that is a
// pure function of its flat index (verifier/rng.h). The host regenerates any
// slice with the same call (problem.cpp), so the CPU reference never copies a
// multi-GB weight tensor back, and the inputs of any verification can be
// rebuilt from (seed, stream, scale) alone.
//
// Parallel strategy: a grid-stride loop, one element per thread per step.
// The (seed, stream) key is loop-invariant and hoisted, so each element is one
// 64-bit finalizer and integer rounding: far cheaper than the 2-byte store
// it feeds, so no vectorization is attempted.
//
// Launch rule: any 1-D grid and block, e.g. block=(256),
// grid=(min(cdiv(n, 256), 65536)). The values do not depend on the launch.
// Streams and scales per tensor: see verifier/moe_decode/problem.h.
//
// Exactness: integer arithmetic plus one exact float multiply by a power of
// two; it gives the host's bits with or without --fmad=false and --ftz.
#include "rng.h"
#include "params.h"

extern "C" __global__ void fill_bf16(ns_bf16* out, unsigned long long n, unsigned long long seed, unsigned int stream,
                                     int scale_log2) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = ns_rng_bf16(seed, stream, i, scale_log2);
}
