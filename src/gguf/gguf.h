// GGUF (v2, v3) reader over mmap, with complete validation, and a writer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace yiti::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};
const char* value_type_name(ValueType t);
size_t value_type_size(ValueType t);  // 0 for STRING and ARRAY

// One metadata value. Scalars keep their exact type; arrays keep their element type and
// hold either strings or the raw little-endian element bytes.
struct Value {
    ValueType type = ValueType::UINT8;
    ValueType array_type = ValueType::UINT8;  // for ARRAY
    uint64_t u = 0;                           // unsigned ints and bool
    int64_t i = 0;                            // signed ints
    double f = 0;                             // floats
    std::string str;                          // STRING
    std::vector<std::string> array_str;       // ARRAY of STRING
    std::vector<uint8_t> array_raw;           // ARRAY of numbers / bools
    uint64_t array_len = 0;

    bool is_integer() const;
    bool is_float() const { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }
    // Numeric element k of a numeric array, converted.
    double array_number(uint64_t k) const;
    int64_t array_int(uint64_t k) const;
    std::string to_string(size_t max_items = 8) const;  // for `yiti info`
};

struct TensorInfo {
    std::string name;
    DType type = DType::F32;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
    uint64_t offset = 0;           // relative to the data section
    size_t size = 0;               // bytes
    const uint8_t* data = nullptr; // inside the mapping
    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    std::string shape_string() const;
};

class File {
public:
    // Maps and validates the whole file; throws yiti::Error naming the file, the field and the value.
    static std::unique_ptr<File> open(const std::string& path);
    // Parses a buffer that stays owned by the caller (fuzzing, tests).
    static std::unique_ptr<File> parse(const uint8_t* data, size_t size, const std::string& name);
    ~File();

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    size_t file_size() const { return size_; }
    size_t data_offset() const { return data_offset_; }
    uint32_t alignment() const { return alignment_; }

    const std::vector<std::pair<std::string, Value>>& kvs() const { return kvs_; }
    const Value* find(std::string_view key) const;
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;

    // Typed getters: nullopt when absent, Error when present with an incompatible type.
    std::optional<std::string> get_str(std::string_view key) const;
    std::optional<int64_t> get_int(std::string_view key) const;  // any integer type
    std::optional<double> get_float(std::string_view key) const;  // any number type
    std::optional<bool> get_bool(std::string_view key) const;
    const Value* get_array(std::string_view key, ValueType elem) const;  // nullptr when absent

private:
    File() = default;
    void parse_all();

    std::string path_;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    bool mapped_ = false;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    size_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kvs_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds GGUF v3 files (tests, tools, synthetic models).
//
// Two ways to write: in memory (add_tensor with the bytes, then to_bytes() or write()), or streamed
// for files larger than memory: declare_tensor() each tensor (shape and type only, no bytes), then
// begin(path) writes the header, write_data() appends the tensors' bytes in declaration order (any
// number of calls per tensor; padding is inserted between tensors), and finish() checks that every
// declared byte arrived and closes the file. Tensors added with add_tensor() in a streamed file are
// written by the writer itself when their turn comes.
class Writer {
public:

    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_u64(const std::string& key, uint64_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_str(const std::string& key, const std::string& v);
    void set_arr_str(const std::string& key, const std::vector<std::string>& v);
    void set_arr_f32(const std::string& key, const std::vector<float>& v);
    void set_arr_i32(const std::string& key, const std::vector<int32_t>& v);
    void set_value(const std::string& key, const Value& v);  // copy a value read from another file

    // ne[0] is the row length; data must hold row_size(type, ne[0]) * rows bytes.
    void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data,
                    size_t size);
    void set_alignment(uint32_t a) { alignment_ = a; }

    std::vector<uint8_t> to_bytes() const;      // all tensors must have been added with their bytes
    void write(const std::string& path) const;  // throws Error

    // Streaming (see above). Returns the tensor's size in bytes.
    size_t declare_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne);
    void begin(const std::string& path);          // throws Error
    void write_data(const void* data, size_t size);  // bytes of the current tensor (in order)
    void finish();                                // throws Error when tensors are incomplete
    // The tensor the next write_data() call continues, and how many of its bytes are still due.
    const std::string& current_tensor() const;
    size_t current_remaining() const;

private:
    struct PendingTensor {
        std::string name;
        DType type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
        size_t size = 0;         // bytes
        bool streamed = false;   // declared without data
    };
    std::vector<uint8_t> header_bytes(std::vector<uint64_t>* offsets, uint64_t* data_size) const;
    void stream_put(const void* p, size_t n);
    void stream_advance();  // pads and moves past completed tensors, writing in-memory ones

    std::vector<std::pair<std::string, Value>> kvs_;
    std::vector<PendingTensor> tensors_;
    uint32_t alignment_ = 32;
    // Streaming state
    struct FileCloser {
        void operator()(FILE* f) const { fclose(f); }
    };
    std::unique_ptr<FILE, FileCloser> out_;
    std::string out_path_;
    size_t cur_ = 0;          // index of the tensor being written
    size_t cur_written_ = 0;  // its bytes written so far
    uint64_t pos_ = 0;        // bytes of the data section written so far
    uint64_t data_size_ = 0;  // bytes of the whole data section
    std::vector<uint64_t> offsets_;
};

}  // namespace yiti::gguf
