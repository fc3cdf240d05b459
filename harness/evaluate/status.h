// The outcome of evaluating one candidate on one problem. A bad candidate is
// data: every way it can fail is one of these, stored with its message.
// Values are persisted: never renumber, only append.
#pragma once

#include <string_view>

namespace nightshift::evaluate {

enum class Status {
    ok = 0,
    compile_error = 1,    // NVRTC rejected the source
    launch_error = 2,     // the driver refused or faulted a launch
    wrong_answer = 3,     // output differs from the float64 reference beyond tolerance
    timeout = 4,          // exceeded its time limit
    crashed = 5,          // took its process down
    rejected = 6,         // violates a rule before running (constraints, device limits)
    nondeterministic = 7, // two runs disagree and the file did not declare @nondeterministic
    not_measured = 8,     // the evaluator holds no measurement of it (a replay): neither verified nor timed
};

std::string_view to_string(Status status);

} // namespace nightshift::evaluate
