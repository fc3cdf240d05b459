// @op moe_decode
// @formats bf16
// @launch spin grid=(1) block=(32)
//
// Planted bad kernel, hack class: never returns. A hang must become a
// `timeout` row (the watchdog kills the worker) while the run goes on.
#include "params.h"

extern "C" __global__ void spin(const MoeDecodeParams p) {
    // The exit condition depends on memory nobody writes, so the compiler
    // cannot prove the loop finite or remove it.
    volatile const int* flag = p.topk_ids;
    while (flag[0] >= 0 || flag[0] < 0) {
    }
    p.y[0] = 0;
}
