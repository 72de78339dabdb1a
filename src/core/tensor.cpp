#include "core/tensor.h"

#include "core/error.h"

namespace yiti {

std::string Device::name() const {
    switch (kind) {
        case DeviceKind::CPU: return "cpu";
        case DeviceKind::CUDA: return "cuda" + std::to_string(index);
        case DeviceKind::Vulkan: return "vulkan" + std::to_string(index);
    }
    return "?";
}

Tensor Tensor::slice2(int64_t i2) const {
    YITI_ASSERT(i2 >= 0 && i2 < ne[2]);
    Tensor t = *this;
    t.n_dims = 2;
    t.ne[2] = t.ne[3] = 1;
    t.data = (const uint8_t*)data + (size_t)i2 * nb[2];
    t.nb[2] = t.nb[3] = t.nb[1] * (size_t)t.ne[1];
    t.view_mat = view_mat + i2;  // (view_mat is 0 for a 3-D tensor)
    return t;
}

Tensor Tensor::rows(int64_t r0, int64_t n) const {
    YITI_ASSERT(ne[2] == 1 && ne[3] == 1 && r0 >= 0 && n > 0 && r0 + n <= ne[1]);
    Tensor t = *this;
    t.ne[1] = n;
    t.data = (const uint8_t*)data + (size_t)r0 * nb[1];
    t.nb[2] = t.nb[3] = t.nb[1] * (size_t)n;
    t.view_row0 = view_row0 + r0;  // (the backend decides whether it can read such a view)
    return t;
}

std::string Tensor::shape_string() const {
    std::string s = "[";
    for (int d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
    return s + "]";
}

Tensor make_tensor_view(const std::string& name, DType type, const int64_t* ne, int n_dims, const void* data,
                        Device device) {
    Tensor t;
    t.name = name;
    t.type = type;
    t.n_dims = n_dims;
    for (int d = 0; d < n_dims; ++d) t.ne[d] = ne[d];
    const auto& info = dtype_info(type);
    t.nb[0] = info.type_size;
    t.nb[1] = row_size(type, t.ne[0]);
    for (int d = 2; d < 4; ++d) t.nb[d] = t.nb[d - 1] * (size_t)t.ne[d - 1];
    t.data = data;
    t.device = device;
    return t;
}

}  // namespace yiti
