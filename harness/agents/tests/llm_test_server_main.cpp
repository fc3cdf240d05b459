// nightshift_test_llm_server: the agent tests' local LLM server as a program,
// so a whole loop can be driven by an "LLM" with no network (on a GPU machine
// too). It answers POST /v1/chat/completions (OpenAI) and /v1/messages
// (Anthropic) with canned replies, one step of the --reply sequence per
// request, cycling:
//   kernel         a reply holding the next --kernel file (cycling), with a hypothesis
//   no_kernel      prose with no kernel file        (the agent stores malformed_reply)
//   host_code      a kernel file that calls cudaMalloc (rejected_reply)
//   rate_limit     429 with Retry-After: 1          (the client waits and retries)
//   server_error   500                              (retried)
//   malformed_json a 200 whose body is cut JSON     (malformed_response)
// Usage: nightshift_test_llm_server --kernel FILE [--kernel FILE...] [--reply KIND...] [--port 8011]
#include "harness/agents/tests/llm_test_server.h"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}
} // namespace

int main(int argc, char** argv) {
    using namespace nightshift::agents::testing;
    int port = 8011;
    std::string host = "127.0.0.1";
    std::vector<std::string> kernels, replies;
    std::string hypothesis = "staging x[t] in shared memory once per block lets every warp of gate_up read it "
                             "from shared memory instead of L1/L2, so the weight stream has the memory pipe to itself";
    std::string predicted = "gate_up 3-5% faster at T=1; down unchanged";
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
            return argv[++i];
        };
        try {
            if (arg == "--port") port = std::stoi(value());
            else if (arg == "--host") host = value();
            else if (arg == "--kernel") kernels.push_back(value());
            else if (arg == "--reply") replies.push_back(value());
            else if (arg == "--hypothesis") hypothesis = value();
            else if (arg == "--predicted-effect") predicted = value();
            else {
                std::cerr << "usage: nightshift_test_llm_server --kernel FILE [--kernel FILE...] [--reply KIND...] "
                             "[--port N] [--host A.B.C.D] [--hypothesis TEXT] [--predicted-effect TEXT]\n"
                             "KIND: kernel no_kernel host_code rate_limit server_error malformed_json\n";
                return 2;
            }
        } catch (const std::exception& e) {
            std::cerr << "error: " << e.what() << "\n";
            return 2;
        }
    }
    if (replies.empty()) replies = {"kernel"};
    try {
        std::vector<std::string> sources;
        for (const auto& k : kernels) sources.push_back(read_file(k));
        std::vector<Scripted> steps;
        std::size_t next_kernel = 0;
        // The sequence repeated enough times for any demo; the default after it is the first step.
        for (int round = 0; round < 64; ++round) {
            for (const auto& kind : replies) {
                Scripted s;
                if (kind == "kernel") {
                    if (sources.empty()) throw std::runtime_error("--reply kernel needs a --kernel FILE");
                    s.text = LlmTestServer::kernel_reply(sources[next_kernel++ % sources.size()], hypothesis, predicted);
                } else if (kind == "no_kernel") {
                    s.text = "I would stage x in shared memory, but I will not write the file today.";
                } else if (kind == "host_code") {
                    s.text = LlmTestServer::kernel_reply(
                        "// @op moe_decode\n// @launch k grid=(1) block=(32)\n#include \"params.h\"\n"
                        "extern \"C\" __global__ void k(const MoeDecodeParams p) { void* q; cudaMalloc(&q, 4); }\n",
                        "host allocation", "none");
                } else if (kind == "rate_limit") {
                    s = Scripted::error(429, R"({"error":{"type":"rate_limit_error","message":"slow down"}})", "1");
                } else if (kind == "server_error") {
                    s = Scripted::error(500, R"({"error":{"message":"internal"}})");
                } else if (kind == "malformed_json") {
                    s = Scripted::with(Behaviour::malformed_json);
                } else {
                    throw std::runtime_error("unknown --reply kind '" + kind + "'");
                }
                steps.push_back(std::move(s));
            }
        }
        LlmTestServer server(port, host);
        server.set_default(steps.front());
        server.script(std::move(steps));
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::printf("listening on %s\n", server.base_url().c_str());
        std::fflush(stdout);
        std::size_t seen = 0;
        while (!g_stop) {
            ::usleep(100'000);
            auto received = server.received();
            for (; seen < received.size(); ++seen) {
                std::printf("%s %s (%zu bytes)\n", received[seen].method.c_str(), received[seen].path.c_str(),
                            received[seen].body.size());
                std::fflush(stdout);
            }
        }
        server.stop();
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
