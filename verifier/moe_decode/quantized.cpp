#include "verifier/moe_decode/quantized.h"

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/quantize.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace nightshift::verifier::moe_decode {

const std::vector<std::string>& weight_format_names() {
    static const std::vector<std::string> k_names = {"bf16", "int8_row", "int4_g128", "fp8_e4m3"}; // by NsWeightFormat
    return k_names;
}

int weight_format(std::string_view name) {
    const auto& names = weight_format_names();
    auto found = std::find(names.begin(), names.end(), name);
    if (found == names.end()) {
        throw InputError(fmt::format("unknown weight format '{}'; valid formats: {}", name, fmt::join(names, ", ")));
    }
    return static_cast<int>(found - names.begin());
}

std::string weight_format_name(int format) {
    const auto& names = weight_format_names();
    if (format < 0 || format >= static_cast<int>(names.size())) return fmt::format("format#{}", format);
    return names[static_cast<std::size_t>(format)];
}

int weight_bits(int format) {
    switch (format) {
    case NS_FMT_BF16: return 16;
    case NS_FMT_INT8_ROW:
    case NS_FMT_FP8_E4M3: return 8;
    case NS_FMT_INT4_G128: return 4;
    }
    throw InputError(fmt::format("unknown weight format {}", format));
}

int scale_groups(int format, int cols) {
    return format == NS_FMT_INT4_G128 ? (cols + NS_INT4_GROUP - 1) / NS_INT4_GROUP : 1;
}

double matrix_bytes(int format, int rows, int cols) {
    double weights = static_cast<double>(rows) * cols;
    switch (format) {
    case NS_FMT_BF16: return 2.0 * weights;
    case NS_FMT_INT8_ROW:
    case NS_FMT_FP8_E4M3: return weights + 4.0 * rows;
    case NS_FMT_INT4_G128: return weights / 2.0 + 4.0 * rows * scale_groups(format, cols);
    }
    throw InputError(fmt::format("unknown weight format {}", format));
}

double expert_bytes(const Shape& s) {
    return 2.0 * matrix_bytes(s.format, s.I, s.H) + matrix_bytes(s.format, s.H, s.I);
}

QuantizedMatrix quantize_matrix(const std::vector<std::uint16_t>& bf16, int rows, int cols, int format) {
    if (bf16.size() != static_cast<std::size_t>(rows) * cols) {
        throw InputError(fmt::format("quantize_matrix: {} values for a {}x{} matrix", bf16.size(), rows, cols));
    }
    if (format == NS_FMT_INT4_G128 && cols % 2 != 0) {
        throw InputError(fmt::format("int4_g128 needs an even number of columns, not {}", cols));
    }
    if (format != NS_FMT_INT8_ROW && format != NS_FMT_FP8_E4M3 && format != NS_FMT_INT4_G128) {
        throw InputError(fmt::format("quantize_matrix: '{}' is not a quantized format", weight_format_name(format)));
    }
    const int groups = scale_groups(format, cols);
    const int group_cols = format == NS_FMT_INT4_G128 ? NS_INT4_GROUP : cols;
    QuantizedMatrix q;
    q.codes.assign(format == NS_FMT_INT4_G128 ? bf16.size() / 2 : bf16.size(), 0);
    q.scales.assign(static_cast<std::size_t>(rows) * groups, 0.0f);
    for (int r = 0; r < rows; ++r) {
        const std::uint16_t* row = &bf16[static_cast<std::size_t>(r) * cols];
        for (int g = 0; g < groups; ++g) {
            const int begin = g * group_cols, end = std::min(cols, begin + group_cols);
            float absmax = 0.0f;
            for (int c = begin; c < end; ++c) absmax = std::max(absmax, ns_abs(ns_bf16_to_float(row[c])));
            const float code_max = format == NS_FMT_INT8_ROW   ? NS_INT8_MAX
                                   : format == NS_FMT_FP8_E4M3 ? NS_FP8_E4M3_MAX
                                                               : NS_INT4_MAX;
            const float scale = ns_quant_scale(absmax, code_max);
            q.scales[static_cast<std::size_t>(r) * groups + g] = scale;
            for (int c = begin; c < end; ++c) {
                const float w = ns_bf16_to_float(row[c]);
                const std::size_t flat = static_cast<std::size_t>(r) * cols + c;
                if (format == NS_FMT_INT8_ROW) {
                    q.codes[flat] = static_cast<std::uint8_t>(static_cast<std::int8_t>(ns_quantize_int(w, scale, 127)));
                } else if (format == NS_FMT_FP8_E4M3) {
                    q.codes[flat] = scale == 0.0f ? 0 : ns_fp8_e4m3_encode(ns_div_rn(w, scale));
                } else {
                    const auto nibble = static_cast<std::uint8_t>(ns_quantize_int(w, scale, 7) & 0xF);
                    q.codes[flat / 2] |= static_cast<std::uint8_t>(c % 2 ? nibble << 4 : nibble);
                }
            }
        }
    }
    return q;
}

std::vector<double> dequantize_matrix(const QuantizedMatrix& q, int rows, int cols, int format) {
    const int groups = scale_groups(format, cols);
    std::vector<double> out(static_cast<std::size_t>(rows) * cols);
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            const std::size_t flat = static_cast<std::size_t>(r) * cols + c;
            double code = 0;
            if (format == NS_FMT_INT8_ROW) code = static_cast<std::int8_t>(q.codes.at(flat));
            else if (format == NS_FMT_FP8_E4M3) code = ns_fp8_e4m3_decode(q.codes.at(flat));
            else if (format == NS_FMT_INT4_G128) code = ns_int4_decode(c % 2 ? q.codes.at(flat / 2) >> 4 : q.codes.at(flat / 2));
            else throw InputError(fmt::format("dequantize_matrix: '{}' is not a quantized format", weight_format_name(format)));
            const int g = format == NS_FMT_INT4_G128 ? c / NS_INT4_GROUP : 0;
            out[flat] = code * static_cast<double>(q.scales.at(static_cast<std::size_t>(r) * groups + g));
        }
    }
    return out;
}

} // namespace nightshift::verifier::moe_decode
