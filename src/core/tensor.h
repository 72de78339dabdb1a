// Tensor views: element type, shape, strides and the device the bytes live on.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace yiti {

enum class DeviceKind { CPU, CUDA, Vulkan };

// Where a tensor's bytes live and where the ops on it run. Only the CPU exists today; GPU backends
// add kinds and indices (one per GPU) without changing the model code, which asks each weight's
// device for the backend to run on.
struct Device {
    DeviceKind kind = DeviceKind::CPU;
    int index = 0;
    bool operator==(const Device&) const = default;
    std::string name() const;
};

// The form a backend prepared a weight in for its device (the CPU: 16-row groups repacked for its
// kernels; a GPU: the weight's copy in device memory). Opaque to the model code: only the backend
// of `device` reads it.
struct PreparedWeights {
    Device device;
    virtual ~PreparedWeights() = default;
};

// A view of an n-dimensional tensor (at most 4 dims). ne[0] is the contiguous row length;
// nb[i] is the byte stride of dimension i (nb[0] is the element / block-row unit and unused).
struct Tensor {
    std::string name;
    DType type = DType::F32;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};
    size_t nb[4] = {0, 0, 0, 0};
    const void* data = nullptr;
    Device device;
    // Set when a backend prepared the weights at load (the CPU: cpu::PackedWeights). A view
    // (slice2, rows) keeps pointing at the whole prepared tensor and says which part it is:
    // matrix view_mat, from row view_row0. data keeps pointing at the GGUF bytes (exact mode,
    // embedding lookups).
    const PreparedWeights* prepared = nullptr;
    int64_t view_mat = 0;
    int64_t view_row0 = 0;

    bool valid() const { return data != nullptr; }
    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    size_t row_bytes() const { return nb[1]; }
    const uint8_t* row(int64_t i1, int64_t i2 = 0) const {
        return (const uint8_t*)data + (size_t)i1 * nb[1] + (size_t)i2 * nb[2];
    }
    // The 2-D matrix i2 of a 3-D tensor (one expert of a stacked expert tensor).
    Tensor slice2(int64_t i2) const;
    // Rows [r0, r0 + n) of a 2-D tensor.
    Tensor rows(int64_t r0, int64_t n) const;
    std::string shape_string() const;
};

// Fills ne/nb for a contiguous tensor of the given shape.
Tensor make_tensor_view(const std::string& name, DType type, const int64_t* ne, int n_dims, const void* data,
                        Device device = {});

}  // namespace yiti
