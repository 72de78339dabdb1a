// The compute shaders, compiled to SPIR-V at build time and embedded in the binary
// (cmake/vulkan_shaders.cmake generates the table from src/vulkan/shaders/*.comp).
#pragma once
#include <cstddef>
#include <span>
#include <string_view>

namespace yiti::vk {

struct ShaderBlob {
    const char* name;            // variant name, as in the shader's "// variant:" line
    const unsigned char* spirv;  // 4-byte aligned
    size_t size;                 // bytes
};

std::span<const ShaderBlob> shader_blobs();

inline const ShaderBlob* find_shader(std::string_view name) {
    for (const auto& b : shader_blobs())
        if (name == b.name) return &b;
    return nullptr;
}

}  // namespace yiti::vk
