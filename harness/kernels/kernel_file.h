// A kernel file and what its annotations declare (grammar: kernels_seed/README.md).
// Reading a file checks everything that can be checked without an op spec;
// check_symbols() finishes the job once the op's shape symbols are known.
#pragma once

#include "harness/kernels/expression.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::kernels {

enum class ScratchType { f32, f64, bf16, i32, u32, u8 };

// params.scratch[] has this many slots (NS_MAX_SCRATCH in an op's params.h):
// @scratch and @packed buffers together may not declare more.
constexpr std::size_t k_max_scratch = 8;

std::size_t scratch_type_bytes(ScratchType type);
std::string_view to_string(ScratchType type);

// A knob: passed to NVRTC as -DNAME=VALUE.
struct Tune {
    std::string name;
    std::vector<int64_t> values; // distinct; values[0] is the default
    int line = 0;
};

struct Constraint {
    Expression condition;
    int line = 0;
};

// A @scratch or @packed buffer. Both kinds fill params.scratch[] in
// declaration order; a packed one holds the weights in the file's own layout,
// written by its @prepack launches whenever the candidate is bound to weights.
struct Scratch {
    std::string name;
    ScratchType type = ScratchType::f32;
    Expression count; // elements, not bytes
    int line = 0;
    bool packed = false; // declared with @packed

    // Whether the slot holds packed weights at a given element count: a
    // @packed buffer that is empty at the candidate's knobs (a knob that
    // switches the layout off) is a plain slot, and a file whose packed
    // buffers are all empty there needs no prepack (a prepack writes only
    // packed buffers). The evaluator and export --best both decide by this.
    bool packed_at(long long elements) const { return packed && elements > 0; }
};

struct Launch {
    std::string entry;
    std::array<Expression, 3> grid;  // omitted dimensions are 1
    std::array<Expression, 3> block; // omitted dimensions are 1
    Expression smem_bytes = Expression::constant(0);
    // Nonzero: a programmatic dependent launch (pdl=EXPR). The launch may
    // start while the previous launch of the call still runs; the kernel must
    // execute `griddepcontrol.wait` before it reads anything the previous
    // launch writes (and may issue other loads before that).
    Expression programmatic = Expression::constant(0);
    int line = 0;
};

struct KernelFile {
    std::string path;   // as given, for messages
    std::string source; // the whole file text
    std::string op;
    std::vector<std::string> formats; // empty when the file has no @formats
    // True when `format` is in @formats; a file without @formats reads bf16 only.
    bool supports_format(const std::string& format) const {
        if (formats.empty()) return format == "bf16";
        return std::find(formats.begin(), formats.end(), format) != formats.end();
    }
    std::vector<Tune> tunes;
    std::vector<Constraint> constraints;
    std::vector<Scratch> scratch;  // @scratch and @packed, in declaration order: params.scratch[i]
    std::vector<Launch> launches;  // in launch order
    std::vector<Launch> prepacks;  // @prepack, in order; present exactly when a buffer is packed
    std::optional<std::string> parent;
    bool nondeterministic = false;

    // Each knob at its first value.
    Symbols default_knobs() const;
    // Every combination of knob values: the cartesian product in declaration
    // order, first knob slowest. One empty assignment when there are no knobs.
    std::vector<Symbols> knob_space() const;
    // True when every @constrain holds for knobs and shape symbols merged in one map.
    // Throws InputError "path:line: ..." when a constraint cannot be evaluated.
    bool satisfies(const Symbols& knobs_and_shape) const;
    // Throws InputError "path:line: ..." when an expression names something that
    // is neither a knob nor a shape symbol, or a knob has a shape symbol's name.
    void check_symbols(const std::vector<std::string>& shape_symbols) const;
    // Checks overrides (known knob names, declared values only) and returns the
    // full assignment, defaults filled in for knobs not overridden.
    Symbols resolve_knobs(const Symbols& overrides) const;
};

// Throws InputError "path:LINE: message" ("path: message" when no line applies).
KernelFile parse_kernel_file(std::string path, std::string source);
// Throws IoError when the file cannot be read, InputError as parse_kernel_file.
KernelFile load_kernel_file(const std::filesystem::path& path);

} // namespace nightshift::kernels
