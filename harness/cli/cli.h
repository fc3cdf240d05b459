// The command line. main.cpp forwards here; this is the only place that turns
// errors into exit codes.
#pragma once

namespace nightshift::cli {

// Exit codes: 0 ok, 1 a check failed (a kernel did not verify, no GPU),
// 2 bad input (flags, files, annotations), 3 an internal or CUDA error.
int run(int argc, char** argv);

} // namespace nightshift::cli
