// The one argument every moe_decode kernel takes, shared verbatim by the host
// (harness, verifier) and by device code compiled with NVRTC. Plain C: no host
// headers, no CUDA headers, fixed-width fields only, so both sides agree on the
// layout byte for byte.
//
// Shapes: x [T,H], topk_ids/topk_weights [T,K], w_gate/w_up [E,I,H],
// w_down [E,H,I] (the checkpoint layout), y [T,H].
// y[t,h] = bf16( sum_k w[t,k] * sum_i w_down[e,h,i] * act(gate_e x_t)[i] * (up_e x_t)[i] )
#ifndef NIGHTSHIFT_MOE_DECODE_PARAMS_H
#define NIGHTSHIFT_MOE_DECODE_PARAMS_H

// bf16 values travel as their raw 16 bits: the top half of an IEEE float.
typedef unsigned short ns_bf16;

// Enum values are persisted: never renumber.
enum NsActivation { NS_ACT_SILU = 0, NS_ACT_GELU_TANH = 1 };
enum NsWeightFormat {
    NS_FMT_BF16 = 0,
    NS_FMT_INT8_ROW = 1,
    NS_FMT_INT4_G128 = 2,
    NS_FMT_FP8_E4M3 = 3
};

#define NS_MAX_SCRATCH 8

struct MoeDecodeParams {
    int T, H, I, E, K;
    int activation; // NsActivation
    int format;     // NsWeightFormat of w_gate, w_up, w_down
    int reserved;
    const ns_bf16* x;          // [T,H]
    const int* topk_ids;       // [T,K], each in [0,E)
    const float* topk_weights; // [T,K]
    const void* w_gate;        // [E,I,H] in `format`
    const void* w_up;          // [E,I,H]
    const void* w_down;        // [E,H,I]
    const float* gate_scales;  // quantized formats only; null for bf16
    const float* up_scales;
    const float* down_scales;
    ns_bf16* y;                        // [T,H]
    void* scratch[NS_MAX_SCRATCH];     // the file's @scratch buffers, in declaration order
};

#endif
