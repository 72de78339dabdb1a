#include "vk_test.h"

#include "quant/quant.h"
#include "runtime/devices.h"

namespace yiti::test {

HostWeight make_weight(DType t, int64_t n_in, int64_t n_out, uint64_t seed) {
    HostWeight w;
    Rng rng(seed);
    const std::vector<float> src = rng.vec((size_t)(n_in * n_out));
    const size_t rb = row_size(t, n_in);
    w.bytes.resize(rb * n_out);
    w.deq.resize(src.size());
    for (int64_t r = 0; r < n_out; ++r) {
        quant::quantize_row_ref(t, &src[r * n_in], &w.bytes[r * rb], n_in);
        quant::dequantize_row_ref(t, &w.bytes[r * rb], &w.deq[r * n_in], n_in);
    }
    const int64_t ne[2] = {n_in, n_out};
    w.tensor = make_tensor_view("test.weight", t, ne, 2, w.bytes.data());
    return w;
}

std::vector<double> ref_mul_mat(const HostWeight& w, int64_t n_in, int64_t n_out, const std::vector<float>& x,
                                int64_t n_cols) {
    std::vector<double> y((size_t)(n_cols * n_out));
    for (int64_t c = 0; c < n_cols; ++c)
        for (int64_t r = 0; r < n_out; ++r) {
            double s = 0;
            for (int64_t k = 0; k < n_in; ++k) s += (double)w.deq[r * n_in + k] * x[c * n_in + k];
            y[c * n_out + r] = s;
        }
    return y;
}

#ifdef YITI_VULKAN

int test_device(std::string* why) {
    const char* want = getenv("YITI_TEST_VK_DEVICE");
    if (want && *want) {
        const auto& d = runtime::find_device(want);
        if (d.device.kind != DeviceKind::Vulkan) {
            *why = std::string(want) + " is not a Vulkan device";
            return -1;
        }
        return d.device.index;
    }
    for (const auto& d : runtime::list_devices())
        if (d.device.kind == DeviceKind::Vulkan && d.unusable.empty()) return d.device.index;
    *why = "no Vulkan device (" + runtime::vulkan_unavailable_reason() + ")";
    return -1;
}

std::unique_ptr<vk::Context> limited_context(int index, uint64_t max_storage_range, uint64_t max_alloc) {
    vk::ContextOptions opt;
    opt.cap.max_storage_range = max_storage_range;
    opt.cap.max_alloc = max_alloc;
    return vk::Context::create(index, opt);
}

#endif  // YITI_VULKAN

}  // namespace yiti::test
