// An Evaluation as JSON and back: what `bench --json` prints, what a GPU
// worker sends to the orchestrator, and what the replay evaluator serves.
#pragma once

#include "harness/evaluate/evaluate.h"

#include <nlohmann/json_fwd.hpp>

namespace nightshift::evaluate {

nlohmann::json to_json(const Evaluation& evaluation);
// Throws InputError naming the missing or mistyped field.
Evaluation evaluation_from_json(const nlohmann::json& json);

nlohmann::json to_json(const timing::Measurement& measurement);
timing::Measurement measurement_from_json(const nlohmann::json& json);

// Status by name ("wrong_answer"); InputError for an unknown one.
Status parse_status(std::string_view name);

} // namespace nightshift::evaluate
