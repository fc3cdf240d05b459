// Device kernels of the timing protocol, compiled with NVRTC like any kernel.
// Their names are reserved (nightshift_*): CUPTI's kernel records are told
// apart by name, so the harness's own kernels never count as a candidate's.
//
// read_pass: one streaming pass over a buffer, 16-byte loads, UNROLL loads in
//   flight per thread before the first is used. Two entries run it:
//   nightshift_l2_flush, the L2 flush (a read of 2x the L2 evicts it without
//   leaving dirty lines whose write-back the next kernel would pay for), and
//   nightshift_sol_read, the measured speed of light (the same bytes a
//   candidate must move, read the plainest way). They differ only in name, so
//   the speed-of-light read is timed as a candidate while flushes are not.
//   Plain loads: an evict-first hint would make the flush evict itself first
//   and leave the previous kernel's lines in L2.
//   The xor of everything read is stored only when it equals a value no input
//   produces in practice; the compiler cannot prove that, so no load is dropped.
// nightshift_spin: keeps the GPU busy for a while so the host can queue the
//   timed iterations ahead of it; launch latency then stays out of the events.

#ifndef UNROLL
#define UNROLL 4
#endif

__device__ __forceinline__ void read_pass(const uint4* __restrict__ data, unsigned long long count16,
                                          unsigned int* __restrict__ sink) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int acc = 0;
    for (; i + (UNROLL - 1) * stride < count16; i += UNROLL * stride) {
        uint4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) v[u] = data[i + u * stride];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    for (; i < count16; i += stride) {
        uint4 v = data[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9e3779b9u) sink[0] = acc;
}

extern "C" __global__ void nightshift_l2_flush(const uint4* __restrict__ data, unsigned long long count16,
                                               unsigned int* __restrict__ sink) {
    read_pass(data, count16, sink);
}

extern "C" __global__ void nightshift_sol_read(const uint4* __restrict__ data, unsigned long long count16,
                                               unsigned int* __restrict__ sink) {
    read_pass(data, count16, sink);
}

extern "C" __global__ void nightshift_spin(unsigned long long nanoseconds) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < nanoseconds);
}
