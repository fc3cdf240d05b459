// @op moe_decode
// @formats bf16
// @launch write_far grid=(1) block=(32)
//
// Planted bad kernel, hack class: faults the GPU (an illegal address). The
// fault kills the worker's CUDA context; it must become a `crashed` row, a
// fresh worker must take the next candidate, and nothing else is lost.
#include "params.h"

extern "C" __global__ void write_far(const MoeDecodeParams p) {
    // Far outside any allocation: the MMU faults.
    ns_bf16* far = p.y + (1ull << 40);
    far[threadIdx.x] = 0;
}
