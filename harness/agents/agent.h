// Agents that write kernel files: propose(prompt) -> a kernel file or a typed
// failure, with the call that produced it, for agent_calls. Structure comes
// from agents, parameters from the tuner: the loop sweeps the knobs of every
// file an agent writes, through the same compile, verify and time path.
//   openai, anthropic: LlmAgent over HttpClient and a Backend; a per-run
//     call/token/cost budget (then the agent stops and the tuner goes on
//     alone) and a concurrency limit shared by all loops.
//   replay: re-drives a loop from the calls recorded in a results.db, in each
//     loop's recorded order, decoding each recorded body again; no network.
#pragma once

#include "harness/agents/agent_config.h"
#include "harness/agents/backend.h"
#include "harness/agents/failure.h"
#include "harness/agents/reply_parser.h"
#include "harness/store/store.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <vector>

namespace nightshift::agents {

struct AgentTurn {
    // The call, for agent_calls (run and loop ids are the caller's to set).
    // Empty `status` when no call was made (budget spent, replay exhausted).
    store::AgentCallRecord call;
    std::optional<KernelProposal> proposal; // set when the reply held an acceptable kernel file
    std::optional<Failure> failure;         // set otherwise
};

class Agent {
public:
    virtual ~Agent() = default;
    virtual std::string name() const = 0;
    // Thread-safe: every loop calls it. Never throws for a bad reply or a dead API.
    virtual AgentTurn propose(const ChatRequest& prompt, int loop_index) = 0;
};

// The run's budget over all loops; spent() says why once any limit is reached.
class AgentBudget {
public:
    explicit AgentBudget(const AgentConfig& config);
    std::optional<std::string> spent() const;
    // Takes one call; false (taking nothing) when the budget is spent.
    bool take_call();
    void charge(std::int64_t tokens, double cost_usd);

private:
    std::optional<std::int64_t> m_max_calls, m_max_tokens;
    std::optional<double> m_max_cost;
    std::atomic<std::int64_t> m_calls{0}, m_tokens{0};
    mutable std::mutex m_mutex;
    double m_cost = 0;
};

// The prompt as stored in agent_calls.prompt.
std::string stored_prompt(const ChatRequest& prompt);

// openai, anthropic or replay. Reads the API key from config.api_key_env now
// (InputError for anthropic without one, or a named variable that is unset);
// the key lives only in the agent's memory and is redacted from messages.
// `cancelled` (optional) is polled during a call: true aborts it (Ctrl-C).
std::unique_ptr<Agent> make_agent(const AgentConfig& config, const std::string& op,
                                  const std::vector<std::string>& shape_symbols,
                                  std::function<bool()> cancelled = {});

} // namespace nightshift::agents
