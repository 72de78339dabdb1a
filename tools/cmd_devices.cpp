// yiti devices: the devices yiti can compute on (the CPU, then every Vulkan device), one line each.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "runtime/devices.h"

namespace yiti::cli {

namespace {

std::string bytes_text(uint64_t n) {
    if (n == 0) return "-";
    const double gib = n / double(1ull << 30), mib = n / double(1ull << 20);
    if (gib >= 1)
        return gib == (double)(uint64_t)gib ? strprintf("%.0f GiB", gib) : strprintf("%.1f GiB", gib);
    if (mib >= 1)
        return mib == (double)(uint64_t)mib ? strprintf("%.0f MiB", mib) : strprintf("%.1f MiB", mib);
    return strprintf("%llu B", (unsigned long long)n);
}

const char* yes_no(bool b) {
    return b ? "yes" : "no";
}

}  // namespace

int cmd_devices(int argc, char** argv) {
    bool json = false;
    Args a("devices", "[--json]");
    a.flag("--json", &json, "print a JSON array with every field instead of the table");
    a.examples(
        "  yiti devices\n"
        "  yiti devices --json\n"
        "  YITI_VK_MAX_STORAGE_RANGE=16M yiti devices    # the limits tests use to force split bindings\n"
        "\nThe ids (cpu, vulkan0, vulkan1, ...) are what --device and -ot take. A software (CPU-type)\n"
        "Vulkan device such as lavapipe is never chosen automatically, only when named with --device.\n"
        "YITI_VK_MAX_STORAGE_RANGE and YITI_VK_MAX_ALLOC (bytes, with K, M or G) lower the storage-buffer\n"
        "range and the size of the device-memory blocks; YITI_VK_DISABLE=1 hides every Vulkan device.\n");
    if (!a.parse(argc, argv)) return a.exit_code();

    const auto& devs = runtime::list_devices();
    if (json) {
        nlohmann::ordered_json out = nlohmann::ordered_json::array();
        for (const auto& d : devs) {
            nlohmann::ordered_json j;
            j["id"] = d.id;
            j["name"] = d.name;
            j["type"] = d.type;
            j["driver"] = d.driver;
            j["memory_bytes"] = d.memory_bytes;
            j["max_buffer_bytes"] = d.max_buffer_bytes;
            j["max_storage_range"] = d.max_storage_range;
            j["subgroup_min"] = d.subgroup_min;
            j["subgroup_max"] = d.subgroup_max;
            j["fp16"] = d.fp16;
            j["int8_dot"] = d.int8_dot;
            j["coopmat"] = d.coopmat;
            j["software"] = d.software;
            j["usable"] = d.unusable.empty();
            if (!d.unusable.empty()) j["unusable"] = d.unusable;
            out.push_back(std::move(j));
        }
        printf("%s\n", out.dump(2).c_str());
        return 0;
    }

    printf("%-9s %-11s %-10s %-10s %-8s %-8s %-5s %-8s %-7s %s\n", "ID", "TYPE", "MEMORY", "MAX-BUF", "RANGE",
           "SUBGROUP", "FP16", "INT8-DOT", "COOPMAT", "NAME [DRIVER]");
    for (const auto& d : devs) {
        if (d.device.kind == DeviceKind::CPU) {
            printf("%-9s %-11s %-10s %-10s %-8s %-8s %-5s %-8s %-7s %s\n", d.id.c_str(), d.type.c_str(),
                   bytes_text(d.memory_bytes).c_str(), "-", "-", "-", "-", "-", "-", d.name.c_str());
            continue;
        }
        const std::string type = d.type + (d.software ? " (sw)" : "");
        const std::string sg = d.subgroup_min == d.subgroup_max
                                   ? strprintf("%u", d.subgroup_min)
                                   : strprintf("%u-%u", d.subgroup_min, d.subgroup_max);
        std::string name = d.name;
        if (!d.driver.empty()) name += " [" + d.driver + "]";
        if (!d.unusable.empty()) name += " (unusable: " + d.unusable + ")";
        printf("%-9s %-11s %-10s %-10s %-8s %-8s %-5s %-8s %-7s %s\n", d.id.c_str(), type.c_str(),
               bytes_text(d.memory_bytes).c_str(), bytes_text(d.max_buffer_bytes).c_str(),
               bytes_text(d.max_storage_range).c_str(), sg.c_str(), yes_no(d.fp16), yes_no(d.int8_dot),
               yes_no(d.coopmat), name.c_str());
    }
    if (devs.size() == 1)
        fprintf(stderr, "no Vulkan devices: %s\n", runtime::vulkan_unavailable_reason().c_str());
    for (const auto& d : devs)
        if (d.software)
            fprintf(stderr, "%s is a software (CPU) Vulkan device: used only when named with --device %s\n",
                    d.id.c_str(), d.id.c_str());
    return 0;
}

}  // namespace yiti::cli
