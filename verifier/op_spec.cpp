#include "verifier/op_spec.h"

#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>

namespace nightshift::verifier {

std::vector<std::string> op_names() { return {"moe_decode"}; }

std::unique_ptr<OpSpec> make_op_spec(const std::string& name, const cuda::Device& device,
                                     const cuda::Compiler& compiler) {
    if (name == "moe_decode") return std::make_unique<moe_decode::Spec>(device, compiler);
    throw InputError(fmt::format("unknown op '{}' (known: {})", name, fmt::join(op_names(), ", ")));
}

} // namespace nightshift::verifier
