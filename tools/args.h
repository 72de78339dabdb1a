// A small command-line parser: typed options bound to variables, clear errors for unknown
// options, missing values and values of the wrong type or range.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace yiti::cli {

class Args {
public:
    Args(std::string command, std::string usage) : command_(std::move(command)), usage_(std::move(usage)) {}

    void flag(const std::string& names, bool* out, const std::string& help);
    void str(const std::string& names, std::string* out, const std::string& help, const std::string& metavar = "S");
    void integer(const std::string& names, int64_t* out, const std::string& help, int64_t min, int64_t max);
    void integer(const std::string& names, int* out, const std::string& help, int min, int max);
    void number(const std::string& names, float* out, const std::string& help, float min, float max);
    void u64(const std::string& names, uint64_t* out, const std::string& help);
    // Repeatable: each occurrence appends its value.
    void list(const std::string& names, std::vector<std::string>* out, const std::string& help,
              const std::string& metavar = "S");
    void examples(const std::string& text) { examples_ = text; }
    // Arguments that are not options are collected here (without this, they are an error).
    void positional(std::vector<std::string>* out, const std::string& metavar) {
        positional_ = out;
        positional_name_ = metavar;
    }

    // Parses argv (after the command name). Returns false if the command should exit with
    // `exit_code()` (help printed: 0, or an error message printed: 2).
    bool parse(int argc, char** argv);
    int exit_code() const { return exit_code_; }
    bool given(const std::string& name) const;  // any of the option's names was on the command line
    void print_help() const;

private:
    struct Opt {
        std::vector<std::string> names;
        std::string help, metavar;
        bool takes_value = true;
        std::function<std::string(const std::string&)> set;  // returns an error message or ""
        bool seen = false;
    };
    Opt& add(const std::string& names, const std::string& help, const std::string& metavar, bool takes_value);

    std::string command_, usage_, examples_;
    std::vector<std::string>* positional_ = nullptr;
    std::string positional_name_;
    std::vector<Opt> opts_;
    int exit_code_ = 0;
};

// Where the model goes: -ngl, -ot (repeatable), --device; see runtime/placement.h.
struct PlacementFlags {
    int n_gpu_layers = 0;
    std::vector<std::string> overrides;  // "REGEX=DEVICE"
    std::string devices;                 // "vulkan0,vulkan1"
};
void add_placement_flags(Args& a, PlacementFlags* f);

}  // namespace yiti::cli
