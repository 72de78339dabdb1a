#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace yiti::cli {

Args::Opt& Args::add(const std::string& names, const std::string& help, const std::string& metavar, bool takes_value) {
    Opt o;
    std::stringstream ss(names);
    std::string n;
    while (std::getline(ss, n, ',')) o.names.push_back(n);
    o.help = help;
    o.metavar = metavar;
    o.takes_value = takes_value;
    opts_.push_back(std::move(o));
    return opts_.back();
}

void Args::flag(const std::string& names, bool* out, const std::string& help) {
    add(names, help, "", false).set = [out](const std::string&) {
        *out = true;
        return std::string();
    };
}

void Args::str(const std::string& names, std::string* out, const std::string& help, const std::string& metavar) {
    add(names, help, metavar, true).set = [out](const std::string& v) {
        *out = v;
        return std::string();
    };
}

void Args::list(const std::string& names, std::vector<std::string>* out, const std::string& help,
                const std::string& metavar) {
    add(names, help, metavar, true).set = [out](const std::string& v) {
        out->push_back(v);
        return std::string();
    };
}

void add_placement_flags(Args& a, PlacementFlags* f) {
    a.integer("-ngl,--gpu-layers", &f->n_gpu_layers,
              "the last N repeating layers and the output on the GPUs (N >= layers: all; default 0)", 0, 1 << 20);
    a.list("-ot,--override-tensor", &f->overrides,
           "tensors whose name matches REGEX go to DEVICE (repeatable, first match wins; e.g. \"_exps=cpu\")",
           "REGEX=DEVICE");
    a.str("--device", &f->devices, "the GPUs to use, comma-separated ids as `yiti devices` prints them (default: every "
                                   "GPU that is not a software device)", "LIST");
}

static bool parse_ll(const std::string& v, long long* out) {
    if (v.empty()) return false;
    char* end = nullptr;
    errno = 0;
    long long x = strtoll(v.c_str(), &end, 10);
    if (errno || *end) return false;
    *out = x;
    return true;
}

void Args::integer(const std::string& names, int64_t* out, const std::string& help, int64_t min, int64_t max) {
    add(names, help, "N", true).set = [=](const std::string& v) {
        long long x;
        if (!parse_ll(v, &x)) return strprintf("expects an integer, got '%s'", v.c_str());
        if (x < min || x > max) return strprintf("value %lld is out of range [%lld, %lld]", x, (long long)min, (long long)max);
        *out = x;
        return std::string();
    };
}

void Args::integer(const std::string& names, int* out, const std::string& help, int min, int max) {
    add(names, help, "N", true).set = [=](const std::string& v) {
        long long x;
        if (!parse_ll(v, &x)) return strprintf("expects an integer, got '%s'", v.c_str());
        if (x < min || x > max) return strprintf("value %lld is out of range [%d, %d]", x, min, max);
        *out = (int)x;
        return std::string();
    };
}

void Args::number(const std::string& names, float* out, const std::string& help, float min, float max) {
    add(names, help, "X", true).set = [=](const std::string& v) {
        char* end = nullptr;
        errno = 0;
        double x = strtod(v.c_str(), &end);
        if (v.empty() || errno || *end || !std::isfinite(x)) return strprintf("expects a number, got '%s'", v.c_str());
        if (x < min || x > max) return strprintf("value %g is out of range [%g, %g]", x, min, max);
        *out = (float)x;
        return std::string();
    };
}

void Args::u64(const std::string& names, uint64_t* out, const std::string& help) {
    add(names, help, "N", true).set = [=](const std::string& v) {
        char* end = nullptr;
        errno = 0;
        unsigned long long x = strtoull(v.c_str(), &end, 10);
        if (v.empty() || v[0] == '-' || errno || *end) return strprintf("expects a non-negative integer, got '%s'", v.c_str());
        *out = x;
        return std::string();
    };
}

bool Args::parse(int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            print_help();
            exit_code_ = 0;
            return false;
        }
        std::string value;
        bool has_inline = false;
        if (a.rfind("--", 0) == 0) {
            size_t eq = a.find('=');
            if (eq != std::string::npos) {
                value = a.substr(eq + 1);
                a = a.substr(0, eq);
                has_inline = true;
            }
        }
        if (positional_ && (a.empty() || a[0] != '-' || a == "-")) {
            positional_->push_back(a);
            continue;
        }
        if (a == "--" && positional_) {
            for (++i; i < argc; ++i) positional_->push_back(argv[i]);
            break;
        }
        Opt* found = nullptr;
        for (auto& o : opts_)
            for (auto& n : o.names)
                if (n == a) found = &o;
        if (!found) {
            fprintf(stderr, "yiti %s: unknown option '%s' (see 'yiti %s --help')\n", command_.c_str(), a.c_str(),
                    command_.c_str());
            exit_code_ = 2;
            return false;
        }
        if (found->takes_value && !has_inline) {
            if (i + 1 >= argc) {
                fprintf(stderr, "yiti %s: option '%s' needs a value\n", command_.c_str(), a.c_str());
                exit_code_ = 2;
                return false;
            }
            value = argv[++i];
        } else if (!found->takes_value && has_inline) {
            fprintf(stderr, "yiti %s: option '%s' takes no value\n", command_.c_str(), a.c_str());
            exit_code_ = 2;
            return false;
        }
        std::string err = found->set(value);
        if (!err.empty()) {
            fprintf(stderr, "yiti %s: option '%s' %s\n", command_.c_str(), a.c_str(), err.c_str());
            exit_code_ = 2;
            return false;
        }
        found->seen = true;
    }
    return true;
}

bool Args::given(const std::string& name) const {
    for (auto& o : opts_)
        for (auto& n : o.names)
            if (n == name) return o.seen;
    return false;
}

void Args::print_help() const {
    printf("usage: yiti %s %s\n\noptions:\n", command_.c_str(), usage_.c_str());
    for (auto& o : opts_) {
        std::string left;
        for (size_t k = 0; k < o.names.size(); ++k) left += (k ? ", " : "") + o.names[k];
        if (o.takes_value) left += " " + o.metavar;
        printf("  %-28s %s\n", left.c_str(), o.help.c_str());
    }
    printf("  %-28s %s\n", "-h, --help", "show this help");
    if (!examples_.empty()) printf("\nexamples:\n%s", examples_.c_str());
}

}  // namespace yiti::cli
