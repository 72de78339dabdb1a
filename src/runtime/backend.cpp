#include "runtime/backend.h"

#include "core/error.h"

namespace yiti::runtime {

Runtime::Runtime(const Options& opt) : opt_(opt) {
    int n = opt.n_threads > 0 ? opt.n_threads : default_thread_count();
    pool_ = std::make_unique<ThreadPool>(n);
    backends_.push_back(std::make_unique<CpuBackend>(*pool_, opt.exact));
}

Backend& Runtime::backend(const Device& device) {
    for (auto& b : backends_)
        if (b->device() == device) return *b;
    throw Error("no backend for device " + device.name());
}

}  // namespace yiti::runtime
