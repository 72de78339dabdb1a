// The Vulkan backend of the runtime (runtime/backend.h): weights uploaded at load, activations in
// a per-pass arena of device memory, every op of a pass recorded into one Sequence that is
// submitted when the host needs a result (a pass on one GPU: once, for the logits).
#pragma once
#include <deque>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "kv/kv_cache.h"
#include "runtime/backend.h"

namespace yiti::vk {

// The backend of Vulkan device `index` (the process shares one opened device among the model's
// weights, the KV storage and every runtime: a pass holds it until end_pass).
std::unique_ptr<runtime::Backend> make_backend(int index, bool exact);

// Uploads a weight placed on a Vulkan device (2-D matrices, 3-D stacked experts, 1-D F32 vectors);
// false when the device has no kernels for its type.
bool prepare_weights(Tensor& t, std::deque<std::unique_ptr<PreparedWeights>>& keep);

std::unique_ptr<kv::DeviceStorage> make_kv_storage(const Device& d, const kv::KVLayout& layout, int n_blocks,
                                                   const std::vector<int>& layers);

// The counters of every open Vulkan device, summed (runtime::DeviceCounters).
runtime::DeviceCounters device_counters();

}  // namespace yiti::vk
