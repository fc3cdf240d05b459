#include "harness/agents/agent.h"

#include "harness/core/error.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <deque>

namespace nightshift::agents {
namespace {
using Clock = std::chrono::steady_clock;

// The agent_calls.status of a turn.
std::string status_of(const std::optional<Failure>& failure) {
    return failure ? std::string(to_string(failure->kind)) : "ok";
}

// A reply body (2xx) into a turn: the backend decodes the API's JSON, the
// parser checks the kernel file.
void decode(const Backend& backend, const std::string& body, const std::string& op,
            const std::vector<std::string>& symbols, AgentTurn& turn) {
    Outcome<ChatReply> reply = backend.parse(body);
    if (!reply) {
        turn.failure = reply.failure();
        return;
    }
    turn.call.tokens_in = reply.value().tokens_in;
    turn.call.tokens_out = reply.value().tokens_out;
    Outcome<KernelProposal> kernel = parse_reply(reply.value().text, op, symbols);
    if (!kernel) {
        turn.failure = kernel.failure();
        if (reply.value().stop_reason == "length" || reply.value().stop_reason == "max_tokens")
            turn.failure->message += " (the reply hit max_tokens)";
        return;
    }
    turn.proposal = kernel.value();
}

class LlmAgent : public Agent {
public:
    LlmAgent(AgentConfig config, std::string api_key, std::string op, std::vector<std::string> symbols,
             std::function<bool()> cancelled)
        : m_config(std::move(config)), m_key(std::move(api_key)), m_op(std::move(op)), m_symbols(std::move(symbols)),
          m_cancelled(std::move(cancelled)), m_backend(make_backend(m_config.name)), m_client(options()),
          m_budget(m_config),
          m_slots(m_config.concurrency) {}

    std::string name() const override { return m_config.name; }

    AgentTurn propose(const ChatRequest& prompt, int) override {
        AgentTurn turn;
        if (!m_budget.take_call()) {
            turn.failure = Failure{FailureKind::budget_spent, *m_budget.spent(), std::nullopt, {}};
            return turn;
        }
        turn.call.agent = m_config.name;
        turn.call.prompt = stored_prompt(prompt);
        m_slots.acquire();
        const auto start = Clock::now();
        Outcome<HttpResponse> response = m_client.post(m_backend->request(prompt, m_config, m_key));
        m_slots.release();
        turn.call.latency_s = std::chrono::duration<double>(Clock::now() - start).count();
        if (!response) {
            turn.failure = response.failure();
            turn.call.response = response.failure().body.empty() ? response.failure().message
                                                                 : response.failure().body;
        } else {
            turn.call.response = response.value().body;
            decode(*m_backend, response.value().body, m_op, m_symbols, turn);
            const std::int64_t in = turn.call.tokens_in.value_or(0), out = turn.call.tokens_out.value_or(0);
            const double cost = (static_cast<double>(in) * m_config.price_in_per_mtok +
                                 static_cast<double>(out) * m_config.price_out_per_mtok) / 1e6;
            turn.call.cost_usd = cost;
            m_budget.charge(in + out, cost);
        }
        turn.call.status = status_of(turn.failure);
        if (turn.failure) {
            turn.failure->message = redact(turn.failure->message, {m_key});
            turn.call.response = redact(turn.call.response, {m_key});
        }
        return turn;
    }

private:
    HttpOptions options() const {
        HttpOptions o;
        o.timeout = m_config.timeout;
        o.connect_timeout = std::min(m_config.timeout, std::chrono::milliseconds(15'000));
        o.retry.retries = m_config.retries;
        o.secrets = {m_key};
        o.cancelled = m_cancelled;
        return o;
    }

    AgentConfig m_config;
    std::string m_key;
    std::string m_op;
    std::vector<std::string> m_symbols;
    std::function<bool()> m_cancelled;
    std::unique_ptr<Backend> m_backend;
    HttpClient m_client;
    AgentBudget m_budget;
    std::counting_semaphore<1024> m_slots;
};

// One recorded call: what the replay serves.
struct Recorded {
    std::string agent, response, status;
    std::optional<std::int64_t> tokens_in, tokens_out;
    std::optional<double> cost_usd;
};

class ReplayAgent : public Agent {
public:
    ReplayAgent(const AgentConfig& config, std::string op, std::vector<std::string> symbols)
        : m_op(std::move(op)), m_symbols(std::move(symbols)) {
        store::Store db = store::Store::open_read_only(config.replay_db);
        std::int64_t run = 0;
        if (config.replay_run) {
            run = *config.replay_run;
        } else {
            auto rows = db.query("SELECT max(run_id) FROM agent_calls");
            if (rows.empty() || rows[0][0].empty())
                throw InputError(fmt::format("replay_db {}: no recorded agent calls", config.replay_db));
            run = std::stoll(rows[0][0]);
        }
        m_source = fmt::format("{} run {}", config.replay_db, run);
        auto rows = db.query(fmt::format(
            "SELECT coalesce(l.loop_index, 0), c.agent, c.response, c.status, c.tokens_in, c.tokens_out, c.cost_usd "
            "FROM agent_calls c LEFT JOIN loops l ON l.id = c.loop_id WHERE c.run_id = {} ORDER BY c.id",
            run));
        if (rows.empty()) throw InputError(fmt::format("replay: {} has no recorded agent calls", m_source));
        auto optional_int = [](const std::string& s) {
            return s.empty() ? std::nullopt : std::optional<std::int64_t>(std::stoll(s));
        };
        for (const auto& r : rows) {
            Recorded rec{r[1], r[2], r[3], optional_int(r[4]), optional_int(r[5]),
                         r[6].empty() ? std::nullopt : std::optional<double>(std::stod(r[6]))};
            // A replay of a replay keeps the wire format it decodes: "replay:openai".
            if (rec.agent.rfind("replay:", 0) == 0) rec.agent = rec.agent.substr(7);
            m_calls[std::stoi(r[0])].push_back(std::move(rec));
        }
    }

    std::string name() const override { return "replay"; }

    AgentTurn propose(const ChatRequest& prompt, int loop_index) override {
        AgentTurn turn;
        std::optional<Recorded> next;
        {
            std::lock_guard<std::mutex> guard(m_mutex);
            auto it = m_calls.find(loop_index);
            if (it != m_calls.end() && !it->second.empty()) {
                next = std::move(it->second.front());
                it->second.pop_front();
            }
        }
        if (!next) {
            turn.failure = Failure{FailureKind::replay_exhausted,
                                   fmt::format("no recorded call left for loop {} in {}", loop_index, m_source),
                                   std::nullopt,
                                   {}};
            return turn;
        }
        const auto start = Clock::now();
        turn.call.agent = "replay:" + next->agent;
        turn.call.prompt = stored_prompt(prompt);
        turn.call.response = next->response;
        if (next->status == "ok" || next->status == "malformed_reply" || next->status == "rejected_reply" ||
            next->status == "malformed_response") {
            // The body came back from the API: decode it again, exactly as the live agent did.
            try {
                decode(*make_backend(next->agent), next->response, m_op, m_symbols, turn);
            } catch (const InputError& e) {
                turn.failure = Failure{FailureKind::malformed_response, e.what(), std::nullopt, {}};
            }
        } else {
            // A transport failure is replayed as the same failure.
            FailureKind kind = FailureKind::network;
            for (auto k : {FailureKind::network, FailureKind::timeout, FailureKind::http_error,
                           FailureKind::rate_limited, FailureKind::truncated}) {
                if (to_string(k) == next->status) kind = k;
            }
            turn.failure = Failure{kind, "replayed: " + next->response.substr(0, 500), std::nullopt, {}};
        }
        turn.call.tokens_in = next->tokens_in;
        turn.call.tokens_out = next->tokens_out;
        turn.call.cost_usd = 0; // nothing was spent this time
        turn.call.latency_s = std::chrono::duration<double>(Clock::now() - start).count();
        turn.call.status = status_of(turn.failure);
        return turn;
    }

private:
    std::string m_op;
    std::vector<std::string> m_symbols;
    std::string m_source;
    std::mutex m_mutex;
    std::map<int, std::deque<Recorded>> m_calls; // loop index -> its calls in recorded order
};

} // namespace

AgentBudget::AgentBudget(const AgentConfig& config)
    : m_max_calls(config.max_calls), m_max_tokens(config.max_total_tokens), m_max_cost(config.max_cost_usd) {}

std::optional<std::string> AgentBudget::spent() const {
    if (m_max_calls && m_calls.load() >= *m_max_calls)
        return fmt::format("the agent's call budget is spent ({} calls)", *m_max_calls);
    if (m_max_tokens && m_tokens.load() >= *m_max_tokens)
        return fmt::format("the agent's token budget is spent ({} of {} tokens)", m_tokens.load(), *m_max_tokens);
    std::lock_guard<std::mutex> guard(m_mutex);
    if (m_max_cost && m_cost >= *m_max_cost)
        return fmt::format("the agent's cost budget is spent (${:.4f} of ${:.4f})", m_cost, *m_max_cost);
    return std::nullopt;
}

bool AgentBudget::take_call() {
    if (m_max_tokens && m_tokens.load() >= *m_max_tokens) return false;
    {
        std::lock_guard<std::mutex> guard(m_mutex);
        if (m_max_cost && m_cost >= *m_max_cost) return false;
    }
    if (!m_max_calls) {
        m_calls.fetch_add(1);
        return true;
    }
    std::int64_t calls = m_calls.load();
    while (calls < *m_max_calls) {
        if (m_calls.compare_exchange_weak(calls, calls + 1)) return true;
    }
    return false;
}

void AgentBudget::charge(std::int64_t tokens, double cost_usd) {
    m_tokens.fetch_add(tokens);
    std::lock_guard<std::mutex> guard(m_mutex);
    m_cost += cost_usd;
}

std::string stored_prompt(const ChatRequest& prompt) {
    return fmt::format("[system]\n{}\n\n[user]\n{}", prompt.system, prompt.user);
}

std::unique_ptr<Agent> make_agent(const AgentConfig& config, const std::string& op,
                                  const std::vector<std::string>& shape_symbols, std::function<bool()> cancelled) {
    if (config.name == "replay") return std::make_unique<ReplayAgent>(config, op, shape_symbols);
    std::string key;
    if (const char* value = std::getenv(config.api_key_env.c_str()); value && *value) key = value;
    const bool named_default = config.api_key_env == "OPENAI_API_KEY" || config.api_key_env == "ANTHROPIC_API_KEY";
    if (key.empty() && (config.name == "anthropic" || !named_default)) {
        throw InputError(fmt::format("agent '{}': the environment variable {} holding the API key is not set",
                                     config.name, config.api_key_env));
    }
    // openai without OPENAI_API_KEY: a local server that wants no key (a hosted
    // API answers 401, stored as an http_error call).
    return std::make_unique<LlmAgent>(config, std::move(key), op, shape_symbols, std::move(cancelled));
}

} // namespace nightshift::agents
