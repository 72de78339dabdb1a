// The `yiti` command-line front end.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "commands.h"
#include "core/error.h"

namespace {

struct Command {
    const char* name;
    int (*fn)(int, char**);
    const char* help;
};

const Command k_commands[] = {
    {"run", yiti::cli::cmd_run, "generate text from a prompt"},
    {"logits", yiti::cli::cmd_logits, "write the logits of one forward pass to a file"},
    {"chat", yiti::cli::cmd_chat, "talk with a model in the terminal"},
    {"info", yiti::cli::cmd_info, "show a model's architecture, tensors and memory needs"},
    {"tokenize", yiti::cli::cmd_tokenize, "show how a model's tokenizer splits a text"},
    {"template", yiti::cli::cmd_template, "render a chat template with a JSON context"},
    {"serve", yiti::cli::cmd_serve, "serve an OpenAI-compatible HTTP API and a web chat page"},
    {"bench-serve", yiti::cli::cmd_bench_serve, "measure a running server under 1..16 concurrent clients"},
    {"bench", yiti::cli::cmd_bench, "measure prompt and generation speed and the memory bandwidth they reach"},
    {"synth", yiti::cli::cmd_synth, "write a random-weight model of a realistic shape for benchmarks"},
    {"devices", yiti::cli::cmd_devices, "list the devices yiti can compute on (CPU, Vulkan GPUs) and their limits"},
};

void usage(FILE* f) {
    fprintf(f, "yiti — run large language models on one machine\n\nusage: yiti <command> [options]\n\ncommands:\n");
    for (auto& c : k_commands) fprintf(f, "  %-10s %s\n", c.name, c.help);
    fprintf(f, "\n'yiti <command> --help' shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        usage(stdout);
        return 0;
    }
    if (cmd == "--version" || cmd == "version") {
        printf("yiti 0.1.0\n");
        return 0;
    }
    for (auto& c : k_commands) {
        if (cmd != c.name) continue;
        try {
            return c.fn(argc - 2, argv + 2);
        } catch (const yiti::Error& e) {
            fprintf(stderr, "yiti %s: error: %s\n", c.name, e.what());
            return 1;
        } catch (const std::bad_alloc&) {
            fprintf(stderr, "yiti %s: error: out of memory\n", c.name);
            return 1;
        } catch (const std::exception& e) {
            fprintf(stderr, "yiti %s: error: %s\n", c.name, e.what());
            return 1;
        }
    }
    fprintf(stderr, "yiti: unknown command '%s'\n\n", cmd.c_str());
    usage(stderr);
    return 2;
}
