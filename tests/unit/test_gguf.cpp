// The GGUF reader: round trips through the writer, and a corpus of malformed files that must each
// be rejected with a clear error naming the problem (never a crash: this suite also runs under ASan).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "gguf/gguf.h"

using namespace yiti;
using namespace yiti::gguf;

namespace {

std::vector<uint8_t> valid_file() {
    Writer w;
    w.set_str("general.architecture", "llama");
    w.set_u32("llama.block_count", 1);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_bool("flag", true);
    w.set_arr_str("tokenizer.ggml.tokens", {"a", "b", "c"});
    w.set_arr_f32("tokenizer.ggml.scores", {0.5f, 1.5f, 2.5f});
    std::vector<float> data(64 * 2);
    for (size_t i = 0; i < data.size(); ++i) data[i] = (float)i;
    w.add_tensor("t0", DType::F32, {64, 2}, data.data(), data.size() * 4);
    std::vector<uint8_t> q8(34 * 4, 0);
    w.add_tensor("t1", DType::Q8_0, {64, 2}, q8.data(), q8.size());
    return w.to_bytes();
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
    try {
        File::parse(bytes.data(), bytes.size(), "bad.gguf");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Byte offset of the first occurrence of a byte string (the test edits fields in place).
size_t find(const std::vector<uint8_t>& b, const std::string& s) {
    for (size_t i = 0; i + s.size() <= b.size(); ++i)
        if (memcmp(b.data() + i, s.data(), s.size()) == 0) return i;
    ADD_FAILURE() << "pattern not found: " << s;
    return 0;
}

template <typename T>
void poke(std::vector<uint8_t>& b, size_t off, T v) {
    memcpy(b.data() + off, &v, sizeof(T));
}

}  // namespace

TEST(GGUF, RoundTrip) {
    auto bytes = valid_file();
    auto f = File::parse(bytes.data(), bytes.size(), "ok.gguf");
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(*f->get_str("general.architecture"), "llama");
    EXPECT_EQ(*f->get_int("llama.block_count"), 1);
    EXPECT_FLOAT_EQ((float)*f->get_float("llama.rope.freq_base"), 10000.0f);
    EXPECT_TRUE(*f->get_bool("flag"));
    auto* toks = f->get_array("tokenizer.ggml.tokens", ValueType::STRING);
    ASSERT_TRUE(toks);
    EXPECT_EQ(toks->array_str, (std::vector<std::string>{"a", "b", "c"}));
    auto* sc = f->get_array("tokenizer.ggml.scores", ValueType::FLOAT32);
    ASSERT_TRUE(sc);
    EXPECT_FLOAT_EQ((float)sc->array_number(2), 2.5f);
    ASSERT_EQ(f->tensors().size(), 2u);
    const TensorInfo* t0 = f->find_tensor("t0");
    ASSERT_TRUE(t0);
    EXPECT_EQ(t0->ne[0], 64);
    EXPECT_EQ(t0->ne[1], 2);
    EXPECT_EQ(t0->size, 512u);
    float v;
    memcpy(&v, t0->data + 4 * 70, 4);
    EXPECT_EQ(v, 70.0f);
    EXPECT_EQ(f->find_tensor("t1")->size, 136u);
    EXPECT_EQ(((uintptr_t)(f->find_tensor("t1")->data - bytes.data())) % 32, 0u);
}

TEST(GGUF, WrongTypeGetterNamesKey) {
    auto bytes = valid_file();
    auto f = File::parse(bytes.data(), bytes.size(), "ok.gguf");
    try {
        f->get_int("general.architecture");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("expected an integer"), std::string::npos);
    }
}

TEST(GGUF, TruncatedEverywhere) {
    const auto bytes = valid_file();
    auto ok = File::parse(bytes.data(), bytes.size(), "ok.gguf");
    const TensorInfo* last = ok->find_tensor("t1");
    const size_t end = ok->data_offset() + last->offset + last->size;  // only alignment padding follows
    // Every prefix that cuts into the header or the tensor data must be rejected.
    for (size_t n = 0; n < end; ++n) {
        std::vector<uint8_t> b(bytes.begin(), bytes.begin() + n);
        std::string err = parse_error(b);
        ASSERT_FALSE(err.empty()) << "prefix of " << n << " bytes was accepted";
        EXPECT_NE(err.find("bad.gguf"), std::string::npos) << err;
    }
}

struct Mutation {
    const char* name;
    void (*apply)(std::vector<uint8_t>&);
    const char* expect;  // a substring of the error message
};

const Mutation k_mutations[] = {
    {"bad magic", [](auto& b) { b[0] = 'X'; }, "bad magic"},
    {"version 1", [](auto& b) { poke<uint32_t>(b, 4, 1); }, "version 1"},
    {"version 7", [](auto& b) { poke<uint32_t>(b, 4, 7); }, "unsupported version 7"},
    {"big endian", [](auto& b) { poke<uint32_t>(b, 4, 0x03000000); }, "big-endian"},
    {"absurd tensor count", [](auto& b) { poke<uint64_t>(b, 8, 1ull << 60); }, "tensor count"},
    {"absurd metadata count", [](auto& b) { poke<uint64_t>(b, 16, 1ull << 62); }, "metadata count"},
    {"huge key length", [](auto& b) { poke<uint64_t>(b, 24, 1ull << 40); }, "length"},
    {"unknown value type",
     [](auto& b) { poke<uint32_t>(b, find(b, "general.architecture") + 20, 99); }, "unknown value type 99"},
    {"huge string value",
     [](auto& b) { poke<uint64_t>(b, find(b, "general.architecture") + 24, 1ull << 50); }, "beyond the end"},
    {"huge array",
     [](auto& b) { poke<uint64_t>(b, find(b, "tokenizer.ggml.scores") + 21 + 4 + 4, 1ull << 61); },
     "runs past the end"},
    {"nested array",
     [](auto& b) { poke<uint32_t>(b, find(b, "tokenizer.ggml.scores") + 21 + 4, 9); }, "nested array"},
    {"bad bool", [](auto& b) { b[find(b, "flag") + 4 + 4] = 7; }, "bool value 7"},
    {"zero dims", [](auto& b) { poke<uint32_t>(b, find(b, "t0") + 2, 0); }, "dimensions"},
    {"five dims", [](auto& b) { poke<uint32_t>(b, find(b, "t0") + 2, 5); }, "dimensions"},
    {"zero dim", [](auto& b) { poke<uint64_t>(b, find(b, "t0") + 6, 0); }, "invalid dimension"},
    {"overflowing dims",
     [](auto& b) {
         poke<uint64_t>(b, find(b, "t0") + 6, 1ull << 40);
         poke<uint64_t>(b, find(b, "t0") + 14, 1ull << 40);
     },
     "overflows"},
    {"unknown tensor type", [](auto& b) { poke<uint32_t>(b, find(b, "t0") + 22, 77); }, "unknown tensor type 77"},
    {"row not multiple of block",
     [](auto& b) { poke<uint64_t>(b, find(b, "t1") + 6, 48); }, "not a multiple of the q8_0 block size"},
    {"misaligned offset", [](auto& b) { poke<uint64_t>(b, find(b, "t1") + 26, 3); }, "alignment"},
    {"offset out of range",
     [](auto& b) { poke<uint64_t>(b, find(b, "t1") + 26, 1ull << 20); }, "extends past end of file"},
    {"offset wraps",
     [](auto& b) { poke<uint64_t>(b, find(b, "t1") + 26, ~0ull - 31); }, "extends past end of file"},
    {"duplicate tensor", [](auto& b) { b[find(b, "t1") + 1] = '0'; }, "duplicate tensor 't0'"},
};

TEST(GGUF, MalformedCorpus) {
    for (const Mutation& m : k_mutations) {
        auto b = valid_file();
        m.apply(b);
        std::string err = parse_error(b);
        EXPECT_FALSE(err.empty()) << m.name << ": accepted";
        EXPECT_NE(err.find(m.expect), std::string::npos) << m.name << ": " << err;
        EXPECT_NE(err.find("bad.gguf"), std::string::npos) << m.name << ": " << err;
    }
}

TEST(GGUF, DuplicateKeyAndBadAlignment) {
    {
        Writer w;
        w.set_u32("a.b", 1);
        w.set_u32("a.c", 2);
        auto b = w.to_bytes();
        b[find(b, "a.c") + 2] = 'b';
        EXPECT_NE(parse_error(b).find("duplicate metadata 'a.b'"), std::string::npos);
    }
    for (uint32_t al : {0u, 3u, 48u}) {
        Writer w;
        w.set_u32("general.alignment", al);
        auto b = w.to_bytes();
        EXPECT_NE(parse_error(b).find("general.alignment"), std::string::npos) << al;
    }
}

// The command line reports malformed files as one clear line and a non-zero exit.
TEST(GGUF, CliRejectsMalformedFiles) {
    const char* bin = getenv("YITI_BIN");
    if (!bin) GTEST_SKIP() << "YITI_BIN not set";
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("yiti-gguf-" + std::to_string(getpid()));
    fs::create_directories(dir);
    int k = 0;
    for (const Mutation& m : k_mutations) {
        auto b = valid_file();
        m.apply(b);
        fs::path p = dir / ("bad" + std::to_string(k++) + ".gguf");
        std::ofstream(p, std::ios::binary).write((const char*)b.data(), (std::streamsize)b.size());
        std::string cmd = std::string(bin) + " info -m " + p.string() + " 2>" + (dir / "err.txt").string();
        int rc = system(cmd.c_str());
        EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 1) << m.name << " rc=" << rc;
        std::ifstream ef(dir / "err.txt");
        std::string line, all;
        int lines = 0;
        while (std::getline(ef, line)) all += line, ++lines;
        EXPECT_EQ(lines, 1) << m.name << ": " << all;
        EXPECT_NE(all.find(p.string()), std::string::npos) << m.name << ": " << all;
        EXPECT_NE(all.find(m.expect), std::string::npos) << m.name << ": " << all;
    }
    // Not a file at all, and a missing file.
    for (std::string path : {dir.string(), (dir / "missing.gguf").string()}) {
        int rc = system((std::string(bin) + " info -m " + path + " 2>/dev/null").c_str());
        EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 1) << path;
    }
    fs::remove_all(dir);
}
