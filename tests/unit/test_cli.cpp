// The `yiti` command line as users run it: exact golden text from `run`, a multi-turn `chat`
// through a pipe, `tokenize`, `template`, `logits`, and clear errors for impossible flags.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "../common/golden.h"

namespace {

const std::string k_shared = YITI_SHARED_DIR;
const std::string k_smol = std::string(YITI_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Proc {
    int rc;
    std::string out;
};

// Runs a shell command line (stdout captured; stderr to a file read back when asked).
Proc sh(const std::string& cmd) {
    Proc r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return {-1, ""};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int st = pclose(p);
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::string bin() {
    const char* b = getenv("YITI_BIN");
    return b ? b : "";
}

}  // namespace

#define NEED_BIN() \
    if (bin().empty()) GTEST_SKIP() << "YITI_BIN not set"

TEST(Cli, RunStoriesGreedyIsGolden) {
    NEED_BIN();
    std::ifstream js(k_shared + "/golden/stories260K.p1.json");
    auto j = nlohmann::json::parse(js);
    Proc r = sh(bin() + " run -m " + k_shared + "/models/stories260K.gguf -p \"Once upon a time\" -n 32 --temp 0 -t 2 2>/dev/null");
    ASSERT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "Once upon a time" + j["greedy_text"].get<std::string>() + "\n");
}

// The generated text continues the prompt: a SentencePiece model's first generated word keeps its
// space ("park with", not "parkwith").
TEST(Cli, RunContinuesThePromptWithItsSpace) {
    NEED_BIN();
    Proc r = sh(bin() + " run -m " + k_shared + "/models/stories260K.gguf -p 'Lily went to the park' -n 12 --temp 0 2>/dev/null");
    ASSERT_EQ(r.rc, 0);
    EXPECT_EQ(r.out.rfind("Lily went to the park with her mom.", 0), 0u) << r.out;
}

TEST(Cli, TokenizeStories) {
    NEED_BIN();
    Proc r = sh(bin() + " tokenize -m " + k_shared + "/models/stories260K.gguf --ids \"Once upon a time\"");
    ASSERT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "1 403 407 261 378\n");  // the golden prompt tokens of p1
    r = sh(bin() + " tokenize -m " + k_shared + "/models/stories260K.gguf --ids --no-bos \"Once upon a time\"");
    EXPECT_EQ(r.out, "403 407 261 378\n");
}

TEST(Cli, LogitsMatchesGolden) {
    NEED_BIN();
    const auto g = yiti::test::load_golden(k_shared + "/golden", "stories260K", "p1");
    const std::string out = (std::filesystem::temp_directory_path() / ("yiti-logits-" + std::to_string(getpid()))).string();
    Proc r = sh(bin() + " logits -m " + k_shared + "/models/stories260K.gguf --tokens 1,403,407,261,378 --out " + out +
               " 2>/dev/null");
    ASSERT_EQ(r.rc, 0);
    std::ifstream f(out, std::ios::binary);
    std::vector<float> ours(g.logits.size());
    f.read((char*)ours.data(), (std::streamsize)(ours.size() * 4));
    ASSERT_EQ((size_t)f.gcount(), ours.size() * 4);
    for (size_t t = 0; t < g.tokens.size(); ++t) {
        auto m = yiti::test::compare_row(ours.data() + t * g.n_vocab, g.logits.data() + t * g.n_vocab, g.n_vocab);
        EXPECT_GE(m.cosine, 0.999);
    }
    std::filesystem::remove(out);
}

// `info --tensors` says where each tensor lives once loaded, and how much memory the model holds.
TEST(Cli, InfoShowsPlacement) {
    NEED_BIN();
    Proc r = sh(bin() + " info -m " + k_shared + "/models/synth-llama-Q4_K_M.gguf --tensors 2>/dev/null");
    ASSERT_EQ(r.rc, 0);
    EXPECT_NE(r.out.find("in memory of its own"), std::string::npos) << r.out;
    auto line = [&](const std::string& name) {
        const size_t at = r.out.find("  " + name + " ");
        return at == std::string::npos ? std::string() : r.out.substr(at, r.out.find('\n', at) - at);
    };
    EXPECT_NE(line("token_embd.weight").find("in memory"), std::string::npos) << r.out;
    EXPECT_NE(line("blk.0.ffn_norm.weight").find("in memory"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find(" unused"), std::string::npos) << r.out;
}

TEST(Cli, InfoPlacementTable) {
    NEED_BIN();
    // No GPU chosen (none, or only a software one not named): everything on the CPU, with a warning.
    Proc r = sh(bin() + " info -m " + k_shared + "/models/synth-deepseek2-Q4_K_M.gguf --placement -ngl 99 -ot _exps=cpu 2>&1");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("placement (cpu 7.41 MiB)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("warning: -ngl 99: there is no GPU to use"), std::string::npos) << r.out;
    const size_t at = r.out.find("  blk.1.ffn_up_exps.weight ");
    ASSERT_NE(at, std::string::npos) << r.out;
    EXPECT_NE(r.out.substr(at, r.out.find('\n', at) - at).find("cpu (-ot)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("bytes per device:\n  cpu        7.41 MiB"), std::string::npos) << r.out;
}

bool have_vulkan0() {
    Proc r = sh(bin() + " devices 2>/dev/null");
    return r.rc == 0 && r.out.find("\nvulkan0 ") != std::string::npos;
}

// The commands with the model on the GPU (lavapipe in CI): the start-up line says where it went,
// the greedy text is the golden one, and a decode step fully on the GPU syncs with the host once.
TEST(Cli, RunAndBenchOnTheGpu) {
    NEED_BIN();
    if (!have_vulkan0()) GTEST_SKIP() << "no Vulkan device";
    const std::string m = " -m " + k_shared + "/models/stories260K.gguf";
    Proc cpu = sh(bin() + " run" + m + " -p 'Lily went to the park' -n 24 --temp 0 2>/dev/null");
    Proc gpu = sh(bin() + " run" + m + " -p 'Lily went to the park' -n 24 --temp 0 --device vulkan0 -ngl 99 2>&1 >/dev/null");
    ASSERT_EQ(gpu.rc, 0) << gpu.out;
    EXPECT_NE(gpu.out.find("model placed: cpu "), std::string::npos) << gpu.out;
    EXPECT_NE(gpu.out.find(", vulkan0 "), std::string::npos) << gpu.out;
    Proc text = sh(bin() + " run" + m + " -p 'Lily went to the park' -n 24 --temp 0 --device vulkan0 -ngl 99 2>/dev/null");
    EXPECT_EQ(text.out, cpu.out);
    Proc b = sh(bin() + " bench" + m + " -p 16 -n 8 -r 1 --no-membw --json --device vulkan0 -ngl 99 2>/dev/null");
    ASSERT_EQ(b.rc, 0) << b.out;
    const size_t tg = b.out.find("\"test\": \"tg8\"");
    ASSERT_NE(tg, std::string::npos) << b.out;
    const std::string line = b.out.substr(tg, b.out.find('\n', tg) - tg);
    EXPECT_NE(line.find("\"syncs_per_token\": 1.0000"), std::string::npos) << line;
    EXPECT_NE(line.find("\"submits_per_token\": 1.0000"), std::string::npos) << line;
    // The logits come back (the vocabulary's 512 floats), nothing else.
    EXPECT_NE(line.find("\"d2h_bytes_per_token\": 2048.0"), std::string::npos) << line;
}

TEST(Cli, TemplateRendersChatML) {
    NEED_BIN();
    const auto dir = std::filesystem::temp_directory_path() / ("yiti-tpl-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "ctx.json") << R"({"messages":[{"role":"user","content":"Hi"}],"add_generation_prompt":true})";
    Proc r = sh(bin() + " template --template " + k_shared + "/templates/chatml.jinja --context " + (dir / "ctx.json").string());
    ASSERT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    std::filesystem::remove_all(dir);
}

// A conversation driven through a pipe: the second question only makes sense with the first.
TEST(Cli, ChatMultiTurn) {
    NEED_BIN();
    ASSERT_TRUE(std::filesystem::exists(k_smol)) << k_smol << " is missing: run ./setup.sh";
    Proc r = sh("printf 'What is the capital of France?\\nWhat about Germany?\\n/reset\\nHello!\\n/exit\\nignored\\n' | " +
               bin() + " chat -m " + k_smol + " --temp 0 -n 40 -t 2 --system \"You are a helpful assistant.\" 2>/dev/null");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> lines;
    std::stringstream ss(r.out);
    for (std::string l; std::getline(ss, l);) lines.push_back(l);
    ASSERT_GE(lines.size(), 4u) << r.out;
    EXPECT_NE(lines[0].find("Paris"), std::string::npos) << r.out;
    EXPECT_NE(lines[1].find("Berlin"), std::string::npos) << r.out;
    EXPECT_EQ(lines[2], "[conversation reset]");
    EXPECT_FALSE(lines[3].empty());
    EXPECT_EQ(r.out.find("ignored"), std::string::npos);
}

TEST(Cli, ImpossibleFlagsAreClearErrors) {
    NEED_BIN();
    const std::string m = " -m " + k_shared + "/models/stories260K.gguf";
    struct Case {
        std::string args;
        int rc;
        std::string msg;
    } cases[] = {
        {"run" + m + " -p hi --bogus", 2, "unknown option '--bogus'"},
        {"run" + m + " -p hi -n abc", 2, "option '-n' expects an integer, got 'abc'"},
        {"run" + m + " -p hi --temp -1", 2, "out of range"},
        {"run" + m + " -p hi -t", 2, "option '-t' needs a value"},
        {"run -p hi", 1, "missing -m MODEL"},
        {"run -m /nonexistent.gguf -p hi", 1, "cannot open '/nonexistent.gguf'"},
        {"logits" + m + " --tokens 1,x --out /dev/null", 1, "'x' is not a token id"},
        {"logits" + m + " --tokens 1,999999 --out /dev/null", 1, "out of range"},
        {"run" + m + " -p hi -c 2", 1, "the context only 2"},
        {"frobnicate", 2, "unknown command 'frobnicate'"},
        {"info" + m + " --placement --device vulkan99", 1, "the device 'vulkan99', which does not exist here"},
        {"info" + m + " --placement -ot nothing_like_this=cpu", 1, "matches no tensor of this model"},
        {"info" + m + " --placement -ot _exps", 1, "REGEX=DEVICE"},
        {"info" + m + " --placement -ot 'blk=gpu7'", 1, "the device 'gpu7'"},
        {"run" + m + " -p hi -n 2 -ngl 99 --device vulkan99", 1, "the device 'vulkan99', which does not exist here"},
        {"bench" + m + " -p 8 -n 2 -ot nothing_like_this=cpu", 1, "matches no tensor of this model"},
        {"chat" + m + " -ot _exps", 1, "REGEX=DEVICE"},
        {"logits" + m + " --tokens 1 --out /dev/null -ot 'blk=gpu7'", 1, "the device 'gpu7'"},
        {"serve" + m + " --device ,", 1, "comma-separated list of device ids"},
    };
    for (auto& c : cases) {
        Proc r = sh(bin() + " " + c.args + " 2>&1 >/dev/null");
        EXPECT_EQ(r.rc, c.rc) << c.args << ": " << r.out;
        EXPECT_NE(r.out.find(c.msg), std::string::npos) << c.args << ": " << r.out;
    }
}
