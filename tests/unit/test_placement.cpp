// The placement table: which device each tensor goes to for -ngl, -ot and --device, bytes per
// device, and the one-line errors for an unknown device, a regex that matches nothing and weights
// that do not fit. The devices are described here (no GPU needed).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/error.h"
#include "gguf/gguf.h"
#include "runtime/placement.h"

using namespace yiti;
using runtime::DeviceInfo;
using runtime::PlacementOptions;

namespace {

const std::string kMoe = std::string(YITI_SHARED_DIR) + "/models/synth-deepseek2-Q4_K_M.gguf";  // 4 layers, experts from blk.1
constexpr int kLayers = 4;

DeviceInfo dev(const std::string& id, DeviceKind kind, int index, uint64_t mem, bool software = false) {
    DeviceInfo d;
    d.device.kind = kind;
    d.device.index = index;
    d.id = id;
    d.name = id + " test device";
    d.type = kind == DeviceKind::CPU ? "cpu" : software ? "cpu" : "discrete";
    d.memory_bytes = mem;
    d.software = software;
    return d;
}

std::vector<DeviceInfo> devices() {
    return {dev("cpu", DeviceKind::CPU, 0, 64ull << 30), dev("vulkan0", DeviceKind::Vulkan, 0, 8ull << 30),
            dev("vulkan1", DeviceKind::Vulkan, 1, 16ull << 30), dev("vulkan2", DeviceKind::Vulkan, 2, 4ull << 30, true)};
}

std::map<std::string, std::string> where(const runtime::PlacementPlan& p) {
    std::map<std::string, std::string> m;
    for (auto& t : p.tensors) m[t.name] = t.device;
    return m;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Placement, DefaultIsTheCpuAndBytesAddUp) {
    auto f = gguf::File::open(kMoe);
    auto plan = runtime::plan_placement(*f, kLayers, {}, devices());
    uint64_t total = 0;
    for (auto& t : f->tensors()) total += t.size;
    ASSERT_EQ(plan.device_bytes.size(), 1u);
    EXPECT_EQ(plan.device_bytes[0].first, "cpu");
    EXPECT_EQ(plan.device_bytes[0].second, total);
    for (auto& t : plan.tensors) EXPECT_EQ(t.device, "cpu") << t.name;
}

TEST(Placement, GpuLayersTakeTheLastLayersAndTheOutput) {
    auto f = gguf::File::open(kMoe);
    PlacementOptions o;
    o.n_gpu_layers = 2;
    o.devices = {"vulkan0"};
    auto plan = runtime::plan_placement(*f, kLayers, o, devices());
    for (auto& t : plan.tensors) {
        const bool gpu = t.layer >= 2 || t.name.rfind("output", 0) == 0;
        EXPECT_EQ(t.device, gpu ? "vulkan0" : "cpu") << t.name;
    }
    EXPECT_EQ(plan.device_of("token_embd.weight"), "cpu");
    uint64_t sum = 0;
    for (auto& [id, b] : plan.device_bytes) sum += b;
    uint64_t total = 0;
    for (auto& t : f->tensors()) total += t.size;
    EXPECT_EQ(sum, total);
    EXPECT_NE(plan.summary().find("vulkan0"), std::string::npos);

    // -ngl at or above the layer count: every layer and the output; the embeddings stay.
    o.n_gpu_layers = 99;
    auto all = where(runtime::plan_placement(*f, kLayers, o, devices()));
    EXPECT_EQ(all["blk.0.attn_q_a.weight"], "vulkan0");
    EXPECT_EQ(all["output.weight"], "vulkan0");
    EXPECT_EQ(all["output_norm.weight"], "vulkan0");
    EXPECT_EQ(all["token_embd.weight"], "cpu");
}

TEST(Placement, SoftwareDevicesOnlyWhenNamed) {
    auto f = gguf::File::open(kMoe);
    std::vector<DeviceInfo> only_lavapipe = {dev("cpu", DeviceKind::CPU, 0, 64ull << 30),
                                             dev("vulkan0", DeviceKind::Vulkan, 0, 4ull << 30, true)};
    PlacementOptions o;
    o.n_gpu_layers = 99;
    auto plan = runtime::plan_placement(*f, kLayers, o, only_lavapipe);
    for (auto& t : plan.tensors) EXPECT_EQ(t.device, "cpu") << t.name;
    ASSERT_EQ(plan.warnings.size(), 1u);
    EXPECT_NE(plan.warnings[0].find("--device"), std::string::npos);
    o.devices = {"vulkan0"};
    plan = runtime::plan_placement(*f, kLayers, o, only_lavapipe);
    EXPECT_EQ(plan.device_of("blk.0.attn_q_a.weight"), "vulkan0");
    EXPECT_TRUE(plan.warnings.empty());
    // Automatic choice with real GPUs present skips the software one.
    o.devices.clear();
    auto w = where(runtime::plan_placement(*f, kLayers, o, devices()));
    for (auto& [name, d] : w) EXPECT_NE(d, "vulkan2") << name;
}

TEST(Placement, SeveralGpusGetContiguousRunsByMemory) {
    auto f = gguf::File::open(kMoe);
    PlacementOptions o;
    o.n_gpu_layers = 3;  // layers 1..3; vulkan0 has 8 GiB, vulkan1 16: one layer and two
    auto w = where(runtime::plan_placement(*f, kLayers, o, devices()));
    EXPECT_EQ(w["blk.0.attn_norm.weight"], "cpu");
    EXPECT_EQ(w["blk.1.attn_norm.weight"], "vulkan0");
    EXPECT_EQ(w["blk.2.attn_norm.weight"], "vulkan1");
    EXPECT_EQ(w["blk.3.attn_norm.weight"], "vulkan1");
    EXPECT_EQ(w["output.weight"], "vulkan1");
    // The order of --device decides the order of the runs.
    o.devices = {"vulkan1", "vulkan0"};
    w = where(runtime::plan_placement(*f, kLayers, o, devices()));
    EXPECT_EQ(w["blk.1.attn_norm.weight"], "vulkan1");
    EXPECT_EQ(w["blk.2.attn_norm.weight"], "vulkan1");
    EXPECT_EQ(w["blk.3.attn_norm.weight"], "vulkan0");
}

TEST(Placement, OverridesKeepRoutedExpertsInRamAndTheFirstMatchWins) {
    auto f = gguf::File::open(kMoe);
    PlacementOptions o;
    o.n_gpu_layers = 99;
    o.devices = {"vulkan0"};
    o.overrides = {runtime::parse_tensor_override("_exps=cpu")};
    auto plan = runtime::plan_placement(*f, kLayers, o, devices());
    int exps = 0;
    for (auto& t : plan.tensors) {
        if (t.name.find("_exps") != std::string::npos) {
            EXPECT_EQ(t.device, "cpu") << t.name;
            EXPECT_TRUE(t.overridden);
            ++exps;
        } else if (t.name.find("_shexp") != std::string::npos) {
            EXPECT_EQ(t.device, "vulkan0") << t.name;  // the shared expert is placed on its own
        }
    }
    EXPECT_EQ(exps, 3 * 3);  // gate/up/down in layers 1..3
    o.overrides = {runtime::parse_tensor_override("blk\\.1\\.ffn_down=vulkan1"), runtime::parse_tensor_override("ffn_down=cpu")};
    auto w = where(runtime::plan_placement(*f, kLayers, o, devices()));
    EXPECT_EQ(w["blk.1.ffn_down_exps.weight"], "vulkan1");
    EXPECT_EQ(w["blk.2.ffn_down_exps.weight"], "cpu");
    EXPECT_EQ(w["blk.2.ffn_up_exps.weight"], "vulkan0");
}

TEST(Placement, OneLineErrors) {
    auto f = gguf::File::open(kMoe);
    PlacementOptions o;
    o.devices = {"vulkan7"};
    std::string e = error_of([&] { runtime::plan_placement(*f, kLayers, o, devices()); });
    EXPECT_NE(e.find("vulkan7"), std::string::npos) << e;
    EXPECT_NE(e.find("cpu, vulkan0, vulkan1, vulkan2"), std::string::npos) << e;
    o.devices.clear();
    o.overrides = {{"_exps", "gpu0"}};
    e = error_of([&] { runtime::plan_placement(*f, kLayers, o, devices()); });
    EXPECT_NE(e.find("gpu0"), std::string::npos) << e;
    o.overrides = {{"attn_nothing_like_this", "cpu"}};
    e = error_of([&] { runtime::plan_placement(*f, kLayers, o, devices()); });
    EXPECT_NE(e.find("matches no tensor"), std::string::npos) << e;
    o.overrides = {{"blk.(", "cpu"}};
    e = error_of([&] { runtime::plan_placement(*f, kLayers, o, devices()); });
    EXPECT_NE(e.find("does not compile"), std::string::npos) << e;
    EXPECT_NE(error_of([] { runtime::parse_tensor_override("_exps"); }).find("REGEX=DEVICE"), std::string::npos);
    EXPECT_NE(error_of([] { runtime::parse_tensor_override("=cpu"); }), "");
    EXPECT_NE(error_of([] { runtime::parse_device_list("vulkan0,,vulkan1"); }), "");
    EXPECT_EQ(runtime::parse_device_list("vulkan0, vulkan1"), (std::vector<std::string>{"vulkan0", "vulkan1"}));
    // A device yiti cannot compute on is refused by name, and never chosen automatically.
    auto broken = devices();
    broken[1].unusable = "no compute queue";
    o = PlacementOptions();
    o.devices = {"vulkan0"};
    e = error_of([&] { runtime::plan_placement(*f, kLayers, o, broken); });
    EXPECT_NE(e.find("no compute queue"), std::string::npos) << e;
    o.devices.clear();
    o.n_gpu_layers = 99;
    for (auto& t : runtime::plan_placement(*f, kLayers, o, broken).tensors) EXPECT_NE(t.device, "vulkan0") << t.name;
    // Weights that do not fit: the device, what is needed and what it has.
    auto small = devices();
    small[1].memory_bytes = 3 << 20;
    o.overrides.clear();
    o.devices = {"vulkan0"};
    o.n_gpu_layers = 99;
    e = error_of([&] { runtime::plan_placement(*f, kLayers, o, small); });
    EXPECT_NE(e.find("vulkan0"), std::string::npos) << e;
    EXPECT_NE(e.find("3.00 MiB (3145728 bytes)"), std::string::npos) << e;
    EXPECT_NE(e.find("need"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
    // With the experts kept in RAM it fits.
    o.overrides = {{"_exps", "cpu"}};
    EXPECT_EQ(error_of([&] { runtime::plan_placement(*f, kLayers, o, small); }), "");
}
