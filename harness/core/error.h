// Typed errors for library code. Library code throws; only the CLI turns an
// error into an exit code. Nothing under harness/ or verifier/ calls exit().
#pragma once

#include <stdexcept>
#include <string>

namespace nightshift {

// Base of every error the harness throws on purpose.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Input a person wrote is wrong: a kernel file annotation, a plan, a flag.
// The message names the file and line (or the flag) so it can be fixed.
class InputError : public Error {
public:
    using Error::Error;
};

// A file could not be read or written.
class IoError : public Error {
public:
    using Error::Error;
};

} // namespace nightshift
