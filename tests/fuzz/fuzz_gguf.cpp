// libFuzzer target: the GGUF reader must reject any malformed input with an Error, never crash,
// hang or allocate without bound.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = yiti::gguf::File::parse(data, size, "fuzz-input");
        // Touch what a loader reads.
        for (auto& kv : f->kvs()) (void)kv.second.to_string();
        for (auto& t : f->tensors()) {
            if (t.size) {
                volatile uint8_t first = t.data[0];
                volatile uint8_t last = t.data[t.size - 1];
                (void)first;
                (void)last;
            }
        }
    } catch (const yiti::Error&) {
    }
    return 0;
}
