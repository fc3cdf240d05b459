#include "harness/evaluate/status.h"

namespace nightshift::evaluate {

std::string_view to_string(Status status) {
    switch (status) {
    case Status::ok: return "ok";
    case Status::compile_error: return "compile_error";
    case Status::launch_error: return "launch_error";
    case Status::wrong_answer: return "wrong_answer";
    case Status::timeout: return "timeout";
    case Status::crashed: return "crashed";
    case Status::rejected: return "rejected";
    case Status::nondeterministic: return "nondeterministic";
    case Status::not_measured: return "not_measured";
    }
    return "unknown";
}

} // namespace nightshift::evaluate
