// Where each tensor of a model lives, decided in one place before loading: a table from tensor to
// device built from the user's flags and the devices there are.
//
//   -ngl, --gpu-layers N       the last N repeating layers and the output on the GPUs (N >= layers:
//                              all), split over several GPUs in contiguous runs of layers, in
//                              proportion to their memory; the token embeddings stay on the CPU
//                              (a pass reads a few rows of them)
//   -ot, --override-tensor R=D tensors whose name matches the regex R go to device D (repeatable,
//                              the first match wins); e.g. "_exps=cpu" keeps the routed experts
//                              in RAM (the shared expert, "_shexp", stays with its layer)
//   --device LIST              the GPUs to use (ids as `yiti devices` prints them); by default
//                              every GPU that is not a software (CPU-type) Vulkan device
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "runtime/devices.h"

namespace yiti::gguf {
class File;
}

namespace yiti::runtime {

struct PlacementOptions {
    int n_gpu_layers = 0;  // -ngl
    std::vector<std::pair<std::string, std::string>> overrides;  // -ot (regex, device id), in order
    std::vector<std::string> devices;                          // --device; empty: automatic
};

struct PlacedTensor {
    std::string name;
    DType type = DType::F32;
    uint64_t bytes = 0;
    int layer = -1;      // the repeating layer it belongs to (blk.N.), -1 for none
    std::string device;  // device id ("cpu", "vulkan0", ...)
    bool overridden = false;  // placed by an -ot rule
};

struct PlacementPlan {
    std::vector<PlacedTensor> tensors;                            // in the file's order
    std::vector<std::pair<std::string, uint64_t>> device_bytes;  // every device that holds something, cpu first
    std::vector<std::string> warnings;                            // e.g. -ngl without any GPU

    // The device id of a tensor ("cpu" for a name not in the plan).
    const std::string& device_of(const std::string& tensor) const;
    // "cpu 1.20 GiB, vulkan0 3.41 GiB"
    std::string summary() const;
    // Moves a tensor to another device after the fact (a device that cannot take its type keeps
    // it on the CPU), keeping the bytes per device right.
    void move(const std::string& tensor, const std::string& device);
};

// "REGEX=DEVICE" -> (regex, device); throws yiti::Error for a malformed argument.
std::pair<std::string, std::string> parse_tensor_override(const std::string& arg);
// "vulkan0,vulkan1" -> ids; throws for an empty item.
std::vector<std::string> parse_device_list(const std::string& arg);

// Builds the table. Throws yiti::Error (one line) for an unknown device, a regex that does not
// compile or matches no tensor of the model, or weights that do not fit in a GPU's memory (naming
// the device, the bytes needed and the bytes it has).
PlacementPlan plan_placement(const gguf::File& file, int n_layer, const PlacementOptions& opt,
                             const std::vector<DeviceInfo>& devices);

// Byte counts as "1.20 GiB".
std::string human_bytes(double bytes);

}  // namespace yiti::runtime
