// The float64 CPU reference for moe_decode: the definition every kernel and
// the GPU reference (reference_gpu.cu) are checked against.
//
// Inputs are bf16 and convert to double exactly; products of two bf16 are
// exact in double too, so the only rounding is in the sums and the
// activation, far below any kernel's float32/bf16 error. The result is not
// rounded to bf16: the verifier measures a candidate's error against it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "verifier/moe_decode/problem.h"

namespace nightshift::verifier::moe_decode {

// act(g) in double for an NsActivation (silu or gelu_tanh); InputError otherwise.
double apply_activation(int activation, double g);

// y [T,H] = sum_k w[t,k] * sum_i down_e[h,i] * act(gate_e x_t)[i] * (up_e x_t)[i].
// weights_of is called once per distinct routed expert, from the calling
// thread, before any work starts; the references it returns must stay valid
// until this returns. Tokens are then computed in parallel; the result does
// not depend on the number of threads. InputError on mismatched sizes or
// expert ids outside [0,E).
std::vector<double> reference_cpu(const Shape& shape, const std::vector<uint16_t>& x, const Routing& routing,
                                  const std::function<const ExpertWeights&(int expert)>& weights_of);

// The same on seeded synthetic weights: generates each routed expert once with
// make_expert_weights (the bits the device generator writes).
std::vector<double> reference_cpu(const Shape& shape, unsigned long long seed, const std::vector<uint16_t>& x,
                                  const Routing& routing);

} // namespace nightshift::verifier::moe_decode
