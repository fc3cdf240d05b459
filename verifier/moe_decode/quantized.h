// Quantized expert weights on the host: the format names, their byte counts,
// and the quantization of verifier/quantize.h applied to whole matrices, bit
// for bit what the device's quantize_rows (generate.cu) writes. The CPU
// reference and the tests use it; the GPU path quantizes on the device.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "verifier/moe_decode/problem.h"

namespace nightshift::verifier::moe_decode {

// NsWeightFormat by name (bf16, int8_row, int4_g128, fp8_e4m3); InputError
// listing the valid names otherwise.
int weight_format(std::string_view name);
std::string weight_format_name(int format);
const std::vector<std::string>& weight_format_names();

// One matrix [rows, cols] of one expert in a quantized format (see quantize.h).
struct QuantizedMatrix {
    std::vector<std::uint8_t> codes; // rows*cols bytes (int4: rows*cols/2)
    std::vector<float> scales;       // rows (int4: rows*groups)
};

// Bits per stored weight, scales not counted: 16, 8 or 4.
int weight_bits(int format);
// Scales per row of a matrix with `cols` columns: 1, or ceil(cols/128) for int4.
int scale_groups(int format, int cols);
// Bytes of codes plus scales of one [rows, cols] matrix.
double matrix_bytes(int format, int rows, int cols);
// Bytes of one expert's three matrices in the shape's format.
double expert_bytes(const Shape& shape);

// InputError for bf16 (nothing to quantize), an odd cols for int4, or a size mismatch.
QuantizedMatrix quantize_matrix(const std::vector<std::uint16_t>& bf16, int rows, int cols, int format);
// code * scale per weight, exactly, in double.
std::vector<double> dequantize_matrix(const QuantizedMatrix& q, int rows, int cols, int format);

} // namespace nightshift::verifier::moe_decode
