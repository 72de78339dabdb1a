#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "core/error.h"

namespace yiti::gguf {

namespace {

constexpr uint32_t k_max_dims = 4;
constexpr uint64_t k_max_string = 1ull << 30;  // no key or value string in a real file is near 1 GiB

bool valid_value_type(uint32_t t) { return t <= (uint32_t)ValueType::FLOAT64; }

// Bounds-checked little-endian cursor over the file. Every failure names the field being read.
class Cursor {
public:
    Cursor(const uint8_t* p, size_t n, const std::string& file) : p_(p), n_(n), file_(file) {}
    size_t pos() const { return pos_; }
    size_t remaining() const { return n_ - pos_; }

    [[noreturn]] void fail(const std::string& what) const {
        throw Error(strprintf("gguf: %s: %s (at byte %zu of %zu)", file_.c_str(), what.c_str(), pos_, n_));
    }
    void need(size_t k, const std::string& field) const {
        if (k > remaining())
            fail(strprintf("truncated while reading %s (needs %zu bytes, %zu left)", field.c_str(), k,
                           remaining()));
    }
    template <typename T>
    T read(const std::string& field) {
        need(sizeof(T), field);
        T v;
        memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string read_string(const std::string& field) {
        uint64_t len = read<uint64_t>(field + " length");
        if (len > k_max_string || len > remaining())
            fail(strprintf("%s has length %" PRIu64 ", beyond the end of the file", field.c_str(), len));
        std::string s((const char*)p_ + pos_, (size_t)len);
        pos_ += (size_t)len;
        return s;
    }
    const uint8_t* take(size_t k, const std::string& field) {
        need(k, field);
        const uint8_t* r = p_ + pos_;
        pos_ += k;
        return r;
    }

private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
    const std::string& file_;
};

std::string printable(const std::string& s) {
    std::string out;
    for (unsigned char c : s.substr(0, 64)) {
        if (c >= 32 && c < 127) out += (char)c;
        else out += strprintf("\\x%02x", c);
    }
    if (s.size() > 64) out += "...";
    return out;
}

void read_scalar(Cursor& c, ValueType t, Value& v, const std::string& field) {
    v.type = t;
    switch (t) {
        case ValueType::UINT8: v.u = c.read<uint8_t>(field); break;
        case ValueType::INT8: v.i = c.read<int8_t>(field); break;
        case ValueType::UINT16: v.u = c.read<uint16_t>(field); break;
        case ValueType::INT16: v.i = c.read<int16_t>(field); break;
        case ValueType::UINT32: v.u = c.read<uint32_t>(field); break;
        case ValueType::INT32: v.i = c.read<int32_t>(field); break;
        case ValueType::UINT64: v.u = c.read<uint64_t>(field); break;
        case ValueType::INT64: v.i = c.read<int64_t>(field); break;
        case ValueType::FLOAT32: v.f = c.read<float>(field); break;
        case ValueType::FLOAT64: v.f = c.read<double>(field); break;
        case ValueType::BOOL: {
            uint8_t b = c.read<uint8_t>(field);
            if (b > 1) c.fail(strprintf("%s: bool value %u is neither 0 nor 1", field.c_str(), b));
            v.u = b;
            break;
        }
        case ValueType::STRING: v.str = c.read_string(field); break;
        case ValueType::ARRAY: YITI_ASSERT(false); break;
    }
}

}  // namespace

const char* value_type_name(ValueType t) {
    static const char* names[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32",  "float32",
                                  "bool",  "string", "array", "uint64", "int64",  "float64"};
    uint32_t i = (uint32_t)t;
    return i < 13 ? names[i] : "?";
}

size_t value_type_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8:
        case ValueType::INT8:
        case ValueType::BOOL: return 1;
        case ValueType::UINT16:
        case ValueType::INT16: return 2;
        case ValueType::UINT32:
        case ValueType::INT32:
        case ValueType::FLOAT32: return 4;
        case ValueType::UINT64:
        case ValueType::INT64:
        case ValueType::FLOAT64: return 8;
        default: return 0;
    }
}

bool Value::is_integer() const {
    switch (type) {
        case ValueType::UINT8:
        case ValueType::INT8:
        case ValueType::UINT16:
        case ValueType::INT16:
        case ValueType::UINT32:
        case ValueType::INT32:
        case ValueType::UINT64:
        case ValueType::INT64: return true;
        default: return false;
    }
}

double Value::array_number(uint64_t k) const {
    YITI_ASSERT(type == ValueType::ARRAY && k < array_len);
    const uint8_t* p = array_raw.data() + k * value_type_size(array_type);
    switch (array_type) {
        case ValueType::UINT8:
        case ValueType::BOOL: return *p;
        case ValueType::INT8: return (int8_t)*p;
        case ValueType::UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
        case ValueType::INT16: { int16_t x; memcpy(&x, p, 2); return x; }
        case ValueType::UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
        case ValueType::INT32: { int32_t x; memcpy(&x, p, 4); return x; }
        case ValueType::FLOAT32: { float x; memcpy(&x, p, 4); return x; }
        case ValueType::UINT64: { uint64_t x; memcpy(&x, p, 8); return (double)x; }
        case ValueType::INT64: { int64_t x; memcpy(&x, p, 8); return (double)x; }
        case ValueType::FLOAT64: { double x; memcpy(&x, p, 8); return x; }
        default: YITI_ASSERT(false);
    }
    return 0;
}

int64_t Value::array_int(uint64_t k) const {
    YITI_ASSERT(type == ValueType::ARRAY && k < array_len);
    const uint8_t* p = array_raw.data() + k * value_type_size(array_type);
    switch (array_type) {
        case ValueType::UINT64: { uint64_t x; memcpy(&x, p, 8); return (int64_t)x; }
        case ValueType::INT64: { int64_t x; memcpy(&x, p, 8); return x; }
        default: return (int64_t)array_number(k);
    }
}

std::string Value::to_string(size_t max_items) const {
    switch (type) {
        case ValueType::STRING: return "\"" + printable(str) + "\"";
        case ValueType::BOOL: return u ? "true" : "false";
        case ValueType::FLOAT32:
        case ValueType::FLOAT64: return strprintf("%g", f);
        case ValueType::ARRAY: {
            std::string s = strprintf("[%s x %" PRIu64 "]", value_type_name(array_type), array_len);
            s += " [";
            for (uint64_t k = 0; k < array_len && k < max_items; ++k) {
                if (k) s += ", ";
                if (array_type == ValueType::STRING) s += "\"" + printable(array_str[k]) + "\"";
                else if (array_type == ValueType::FLOAT32 || array_type == ValueType::FLOAT64)
                    s += strprintf("%g", array_number(k));
                else s += strprintf("%" PRId64, array_int(k));
            }
            if (array_len > max_items) s += ", ...";
            return s + "]";
        }
        default:
            if (type == ValueType::UINT8 || type == ValueType::UINT16 || type == ValueType::UINT32 ||
                type == ValueType::UINT64)
                return strprintf("%" PRIu64, u);
            return strprintf("%" PRId64, i);
    }
}

std::string TensorInfo::shape_string() const {
    std::string s = "[";
    for (int d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
    return s + "]";
}

File::~File() {
    if (mapped_ && base_) munmap((void*)base_, size_);
}

std::unique_ptr<File> File::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(strprintf("gguf: cannot open '%s': %s", path.c_str(), strerror(errno)));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        throw Error(strprintf("gguf: cannot stat '%s': %s", path.c_str(), strerror(e)));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        throw Error(strprintf("gguf: '%s' is not a regular file", path.c_str()));
    }
    if (st.st_size == 0) {
        close(fd);
        throw Error(strprintf("gguf: '%s' is empty", path.c_str()));
    }
    void* p = mmap(nullptr, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) throw Error(strprintf("gguf: cannot map '%s': %s", path.c_str(), strerror(e)));
    std::unique_ptr<File> f(new File());
    f->path_ = path;
    f->base_ = (const uint8_t*)p;
    f->size_ = (size_t)st.st_size;
    f->mapped_ = true;
    f->parse_all();
    return f;
}

std::unique_ptr<File> File::parse(const uint8_t* data, size_t size, const std::string& name) {
    std::unique_ptr<File> f(new File());
    f->path_ = name;
    f->base_ = data;
    f->size_ = size;
    f->parse_all();
    return f;
}

void File::parse_all() {
    Cursor c(base_, size_, path_);
    const uint8_t* magic = c.take(4, "magic");
    if (memcmp(magic, "GGUF", 4) != 0)
        c.fail(strprintf("bad magic '%s' (expected 'GGUF'; not a GGUF file)",
                         printable(std::string((const char*)magic, 4)).c_str()));
    version_ = c.read<uint32_t>("version");
    if (version_ == 1) c.fail("version 1 is not supported (only 2 and 3); re-convert the model");
    if (version_ != 2 && version_ != 3) {
        if ((version_ & 0xFFFF) == 0)
            c.fail(strprintf("version %u: looks like a big-endian GGUF file, which is not supported", version_));
        c.fail(strprintf("unsupported version %u (only 2 and 3)", version_));
    }
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    // Each key-value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
    // 8 + 4 + 8 + 4 + 8 bytes. Counts beyond what the file could hold are rejected before any allocation.
    if (n_kv > c.remaining() / 13)
        c.fail(strprintf("metadata count %" PRIu64 " is impossible for a file of %zu bytes", n_kv, size_));
    if (n_tensors > c.remaining() / 32)
        c.fail(strprintf("tensor count %" PRIu64 " is impossible for a file of %zu bytes", n_tensors, size_));

    kvs_.reserve((size_t)n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = c.read_string(strprintf("key of metadata entry %" PRIu64, k));
        const std::string field = "metadata '" + printable(key) + "'";
        if (key.empty()) c.fail(strprintf("metadata entry %" PRIu64 " has an empty key", k));
        uint32_t t = c.read<uint32_t>(field + " type");
        if (!valid_value_type(t)) c.fail(strprintf("%s has unknown value type %u", field.c_str(), t));
        Value v;
        if ((ValueType)t == ValueType::ARRAY) {
            v.type = ValueType::ARRAY;
            uint32_t et = c.read<uint32_t>(field + " array element type");
            if (!valid_value_type(et))
                c.fail(strprintf("%s has unknown array element type %u", field.c_str(), et));
            if ((ValueType)et == ValueType::ARRAY) c.fail(field + " is a nested array, which is not supported");
            v.array_type = (ValueType)et;
            v.array_len = c.read<uint64_t>(field + " array length");
            if (v.array_type == ValueType::STRING) {
                if (v.array_len > c.remaining() / 8)
                    c.fail(strprintf("%s array length %" PRIu64 " runs past the end of the file", field.c_str(),
                                     v.array_len));
                v.array_str.reserve((size_t)v.array_len);
                for (uint64_t j = 0; j < v.array_len; ++j)
                    v.array_str.push_back(c.read_string(strprintf("%s[%" PRIu64 "]", field.c_str(), j)));
            } else {
                size_t es = value_type_size(v.array_type);
                if (v.array_len > c.remaining() / es)
                    c.fail(strprintf("%s array length %" PRIu64 " runs past the end of the file", field.c_str(),
                                     v.array_len));
                const uint8_t* p = c.take((size_t)v.array_len * es, field);
                v.array_raw.assign(p, p + v.array_len * es);
                if (v.array_type == ValueType::BOOL)
                    for (uint8_t b : v.array_raw)
                        if (b > 1) c.fail(strprintf("%s holds a bool value %u", field.c_str(), b));
            }
        } else {
            read_scalar(c, (ValueType)t, v, field);
        }
        if (kv_index_.count(key)) c.fail("duplicate " + field);
        kv_index_[key] = kvs_.size();
        kvs_.emplace_back(std::move(key), std::move(v));
    }

    if (const Value* a = find("general.alignment")) {
        if (a->type != ValueType::UINT32 && !a->is_integer())
            c.fail(strprintf("general.alignment has type %s, expected uint32", value_type_name(a->type)));
        uint64_t al = a->type == ValueType::UINT32 || a->type == ValueType::UINT64 || a->type == ValueType::UINT16 ||
                              a->type == ValueType::UINT8
                          ? a->u
                          : (uint64_t)a->i;
        if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 20))
            c.fail(strprintf("general.alignment is %" PRIu64 ", not a power of two up to 1 MiB", al));
        alignment_ = (uint32_t)al;
    }

    tensors_.reserve((size_t)n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
        TensorInfo ti;
        ti.name = c.read_string(strprintf("name of tensor %" PRIu64, k));
        const std::string field = "tensor '" + printable(ti.name) + "'";
        if (ti.name.empty()) c.fail(strprintf("tensor %" PRIu64 " has an empty name", k));
        uint32_t nd = c.read<uint32_t>(field + " dimension count");
        if (nd == 0 || nd > k_max_dims)
            c.fail(strprintf("%s has %u dimensions (must be 1 to %u)", field.c_str(), nd, k_max_dims));
        ti.n_dims = (int)nd;
        for (uint32_t d = 0; d < nd; ++d) {
            uint64_t ne = c.read<uint64_t>(field + " dimension");
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                c.fail(strprintf("%s has invalid dimension %u = %" PRIu64, field.c_str(), d, ne));
            ti.ne[d] = (int64_t)ne;
        }
        // Element count must not overflow.
        int64_t count = 1;
        for (int d = 0; d < 4; ++d) {
            if (__builtin_mul_overflow(count, ti.ne[d], &count))
                c.fail(strprintf("%s shape %s overflows the element count", field.c_str(), ti.shape_string().c_str()));
        }
        uint32_t raw_type = c.read<uint32_t>(field + " type");
        auto info = dtype_info_raw(raw_type);
        if (!info) c.fail(strprintf("%s has unknown tensor type %u", field.c_str(), raw_type));
        ti.type = (DType)raw_type;
        if (ti.ne[0] % info->block_size != 0)
            c.fail(strprintf("%s row length %" PRId64 " is not a multiple of the %s block size %" PRId64,
                             field.c_str(), ti.ne[0], info->name, info->block_size));
        uint64_t bytes = 0;
        if (__builtin_mul_overflow((uint64_t)(count / info->block_size), (uint64_t)info->type_size, &bytes))
            c.fail(strprintf("%s size overflows", field.c_str()));
        ti.size = (size_t)bytes;
        ti.offset = c.read<uint64_t>(field + " offset");
        if (ti.offset % alignment_ != 0)
            c.fail(strprintf("%s offset %" PRIu64 " is not a multiple of the alignment %u", field.c_str(), ti.offset,
                             alignment_));
        if (tensor_index_.count(ti.name)) c.fail("duplicate " + field);
        tensor_index_[ti.name] = tensors_.size();
        tensors_.push_back(std::move(ti));
    }

    // The data section starts at the next multiple of the alignment.
    size_t pos = c.pos();
    size_t data_off = (pos + alignment_ - 1) / alignment_ * alignment_;
    if (n_tensors > 0 && data_off > size_)
        c.fail(strprintf("data section would start at byte %zu, past the end of the file", data_off));
    data_offset_ = data_off;
    const size_t data_size = size_ > data_off ? size_ - data_off : 0;
    for (auto& ti : tensors_) {
        uint64_t end;
        if (__builtin_add_overflow(ti.offset, (uint64_t)ti.size, &end) || end > data_size)
            throw Error(strprintf("gguf: %s: tensor '%s' extends past end of file (offset %" PRIu64
                                  ", size %zu, data section %zu bytes)",
                                  path_.c_str(), printable(ti.name).c_str(), ti.offset, ti.size, data_size));
        ti.data = base_ + data_off + ti.offset;
    }
}

const Value* File::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<std::string> File::get_str(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::STRING)
        throw Error(strprintf("gguf: %s: metadata '%.*s' has type %s, expected string", path_.c_str(),
                              (int)key.size(), key.data(), value_type_name(v->type)));
    return v->str;
}

std::optional<int64_t> File::get_int(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer())
        throw Error(strprintf("gguf: %s: metadata '%.*s' has type %s, expected an integer", path_.c_str(),
                              (int)key.size(), key.data(), value_type_name(v->type)));
    if (v->type == ValueType::UINT8 || v->type == ValueType::UINT16 || v->type == ValueType::UINT32 ||
        v->type == ValueType::UINT64) {
        if (v->u > (uint64_t)INT64_MAX)
            throw Error(strprintf("gguf: %s: metadata '%.*s' value %" PRIu64 " is out of range", path_.c_str(),
                                  (int)key.size(), key.data(), v->u));
        return (int64_t)v->u;
    }
    return v->i;
}

std::optional<double> File::get_float(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_float()) return v->f;
    if (v->is_integer()) return (double)*get_int(key);
    throw Error(strprintf("gguf: %s: metadata '%.*s' has type %s, expected a number", path_.c_str(), (int)key.size(),
                          key.data(), value_type_name(v->type)));
}

std::optional<bool> File::get_bool(std::string_view key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::BOOL)
        throw Error(strprintf("gguf: %s: metadata '%.*s' has type %s, expected bool", path_.c_str(), (int)key.size(),
                              key.data(), value_type_name(v->type)));
    return v->u != 0;
}

const Value* File::get_array(std::string_view key, ValueType elem) const {
    const Value* v = find(key);
    if (!v) return nullptr;
    bool ok = v->type == ValueType::ARRAY;
    if (ok && v->array_type != elem) {
        // Integer arrays of another integer width are accepted; numbers are converted on access.
        bool want_num = value_type_size(elem) != 0, have_num = value_type_size(v->array_type) != 0;
        ok = want_num && have_num;
    }
    if (!ok)
        throw Error(strprintf("gguf: %s: metadata '%.*s' has type %s%s%s, expected array of %s", path_.c_str(),
                              (int)key.size(), key.data(), value_type_name(v->type),
                              v->type == ValueType::ARRAY ? " of " : "",
                              v->type == ValueType::ARRAY ? value_type_name(v->array_type) : "",
                              value_type_name(elem)));
    return v;
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {
void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
    const uint8_t* b = (const uint8_t*)p;
    out.insert(out.end(), b, b + n);
}
template <typename T>
void put(std::vector<uint8_t>& out, T v) {
    put_bytes(out, &v, sizeof(T));
}
void put_str(std::vector<uint8_t>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    put_bytes(out, s.data(), s.size());
}
}  // namespace

void Writer::set_value(const std::string& key, const Value& v) {
    for (auto& kv : kvs_)
        if (kv.first == key) {
            kv.second = v;
            return;
        }
    kvs_.emplace_back(key, v);
}

void Writer::set_u32(const std::string& key, uint32_t x) {
    Value v;
    v.type = ValueType::UINT32;
    v.u = x;
    set_value(key, v);
}
void Writer::set_i32(const std::string& key, int32_t x) {
    Value v;
    v.type = ValueType::INT32;
    v.i = x;
    set_value(key, v);
}
void Writer::set_u64(const std::string& key, uint64_t x) {
    Value v;
    v.type = ValueType::UINT64;
    v.u = x;
    set_value(key, v);
}
void Writer::set_f32(const std::string& key, float x) {
    Value v;
    v.type = ValueType::FLOAT32;
    v.f = x;
    set_value(key, v);
}
void Writer::set_bool(const std::string& key, bool x) {
    Value v;
    v.type = ValueType::BOOL;
    v.u = x ? 1 : 0;
    set_value(key, v);
}
void Writer::set_str(const std::string& key, const std::string& x) {
    Value v;
    v.type = ValueType::STRING;
    v.str = x;
    set_value(key, v);
}
void Writer::set_arr_str(const std::string& key, const std::vector<std::string>& x) {
    Value v;
    v.type = ValueType::ARRAY;
    v.array_type = ValueType::STRING;
    v.array_str = x;
    v.array_len = x.size();
    set_value(key, v);
}
void Writer::set_arr_f32(const std::string& key, const std::vector<float>& x) {
    Value v;
    v.type = ValueType::ARRAY;
    v.array_type = ValueType::FLOAT32;
    v.array_len = x.size();
    v.array_raw.resize(x.size() * 4);
    memcpy(v.array_raw.data(), x.data(), v.array_raw.size());
    set_value(key, v);
}
void Writer::set_arr_i32(const std::string& key, const std::vector<int32_t>& x) {
    Value v;
    v.type = ValueType::ARRAY;
    v.array_type = ValueType::INT32;
    v.array_len = x.size();
    v.array_raw.resize(x.size() * 4);
    memcpy(v.array_raw.data(), x.data(), v.array_raw.size());
    set_value(key, v);
}

void Writer::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data,
                        size_t size) {
    YITI_ASSERT(!out_);
    YITI_ASSERT(!ne.empty() && ne.size() <= 4);
    int64_t n = 1;
    for (int64_t x : ne) n *= x;
    YITI_ASSERT(row_size(type, n) == size);
    PendingTensor t{name, type, ne, {}, size, false};
    t.data.assign((const uint8_t*)data, (const uint8_t*)data + size);
    tensors_.push_back(std::move(t));
}

size_t Writer::declare_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne) {
    YITI_ASSERT(!out_);
    YITI_ASSERT(!ne.empty() && ne.size() <= 4);
    int64_t n = 1;
    for (int64_t x : ne) n *= x;
    YITI_ASSERT(n % dtype_info(type).block_size == 0);
    const size_t size = row_size(type, n);
    tensors_.push_back(PendingTensor{name, type, ne, {}, size, true});
    return size;
}

std::vector<uint8_t> Writer::header_bytes(std::vector<uint64_t>* offsets, uint64_t* data_size) const {
    std::vector<uint8_t> out;
    put_bytes(out, "GGUF", 4);
    put<uint32_t>(out, 3);
    put<uint64_t>(out, tensors_.size());
    bool has_align = false;
    for (auto& kv : kvs_) has_align |= kv.first == "general.alignment";
    put<uint64_t>(out, kvs_.size() + (alignment_ != 32 && !has_align ? 1 : 0));
    auto put_value = [&](const Value& v) {
        put<uint32_t>(out, (uint32_t)v.type);
        switch (v.type) {
            case ValueType::UINT8: put<uint8_t>(out, (uint8_t)v.u); break;
            case ValueType::INT8: put<int8_t>(out, (int8_t)v.i); break;
            case ValueType::UINT16: put<uint16_t>(out, (uint16_t)v.u); break;
            case ValueType::INT16: put<int16_t>(out, (int16_t)v.i); break;
            case ValueType::UINT32: put<uint32_t>(out, (uint32_t)v.u); break;
            case ValueType::INT32: put<int32_t>(out, (int32_t)v.i); break;
            case ValueType::UINT64: put<uint64_t>(out, v.u); break;
            case ValueType::INT64: put<int64_t>(out, v.i); break;
            case ValueType::FLOAT32: put<float>(out, (float)v.f); break;
            case ValueType::FLOAT64: put<double>(out, v.f); break;
            case ValueType::BOOL: put<uint8_t>(out, (uint8_t)v.u); break;
            case ValueType::STRING: put_str(out, v.str); break;
            case ValueType::ARRAY:
                put<uint32_t>(out, (uint32_t)v.array_type);
                put<uint64_t>(out, v.array_len);
                if (v.array_type == ValueType::STRING)
                    for (auto& s : v.array_str) put_str(out, s);
                else put_bytes(out, v.array_raw.data(), v.array_raw.size());
                break;
        }
    };
    for (auto& kv : kvs_) {
        put_str(out, kv.first);
        put_value(kv.second);
    }
    if (alignment_ != 32 && !has_align) {
        put_str(out, "general.alignment");
        Value v;
        v.type = ValueType::UINT32;
        v.u = alignment_;
        put_value(v);
    }
    uint64_t offset = 0;
    offsets->clear();
    for (auto& t : tensors_) {
        put_str(out, t.name);
        put<uint32_t>(out, (uint32_t)t.ne.size());
        for (int64_t x : t.ne) put<uint64_t>(out, (uint64_t)x);
        put<uint32_t>(out, (uint32_t)t.type);
        put<uint64_t>(out, offset);
        offsets->push_back(offset);
        offset += (t.size + alignment_ - 1) / alignment_ * alignment_;
    }
    out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, 0);
    *data_size = offset;
    return out;
}

std::vector<uint8_t> Writer::to_bytes() const {
    std::vector<uint64_t> offsets;
    uint64_t data_size = 0;
    std::vector<uint8_t> out = header_bytes(&offsets, &data_size);
    const size_t base = out.size();
    for (size_t k = 0; k < tensors_.size(); ++k) {
        YITI_ASSERT(!tensors_[k].streamed);  // declared tensors have no bytes here: use begin()
        out.resize(base + offsets[k], 0);
        put_bytes(out, tensors_[k].data.data(), tensors_[k].data.size());
    }
    if (!tensors_.empty()) out.resize(base + data_size, 0);
    return out;
}

void Writer::write(const std::string& path) const {
    std::vector<uint8_t> bytes = to_bytes();
    FILE* f = fopen(path.c_str(), "wb");
    if (!f) throw Error(strprintf("gguf: cannot create '%s': %s", path.c_str(), strerror(errno)));
    size_t w = fwrite(bytes.data(), 1, bytes.size(), f);
    int rc = fclose(f);
    if (w != bytes.size() || rc != 0) throw Error(strprintf("gguf: writing '%s' failed", path.c_str()));
}

void Writer::stream_put(const void* p, size_t n) {
    if (n && fwrite(p, 1, n, out_.get()) != n)
        throw Error(strprintf("gguf: writing '%s' failed: %s", out_path_.c_str(), strerror(errno)));
    pos_ += n;
}

void Writer::stream_advance() {
    static const uint8_t zeros[256] = {};
    for (;;) {
        if (cur_ >= tensors_.size()) return;
        PendingTensor& t = tensors_[cur_];
        if (cur_written_ == 0 && pos_ < offsets_[cur_]) {
            while (pos_ < offsets_[cur_]) stream_put(zeros, (size_t)std::min<uint64_t>(sizeof zeros, offsets_[cur_] - pos_));
        }
        if (!t.streamed && cur_written_ < t.size) {
            stream_put(t.data.data(), t.size);
            cur_written_ = t.size;
        }
        if (cur_written_ < t.size) return;
        ++cur_;
        cur_written_ = 0;
    }
}

void Writer::begin(const std::string& path) {
    YITI_ASSERT(!out_);
    std::vector<uint8_t> header = header_bytes(&offsets_, &data_size_);
    out_.reset(fopen(path.c_str(), "wb"));
    if (!out_) throw Error(strprintf("gguf: cannot create '%s': %s", path.c_str(), strerror(errno)));
    out_path_ = path;
    if (fwrite(header.data(), 1, header.size(), out_.get()) != header.size())
        throw Error(strprintf("gguf: writing '%s' failed: %s", path.c_str(), strerror(errno)));
    cur_ = 0;
    cur_written_ = 0;
    pos_ = 0;
    stream_advance();
}

void Writer::write_data(const void* data, size_t size) {
    YITI_ASSERT(out_);
    const uint8_t* p = (const uint8_t*)data;
    while (size > 0) {
        if (cur_ >= tensors_.size())
            throw Error(strprintf("gguf: writing '%s': %zu bytes beyond the last tensor", out_path_.c_str(), size));
        const size_t n = std::min(size, tensors_[cur_].size - cur_written_);
        stream_put(p, n);
        cur_written_ += n;
        p += n;
        size -= n;
        stream_advance();
    }
}

const std::string& Writer::current_tensor() const {
    static const std::string none;
    return cur_ < tensors_.size() ? tensors_[cur_].name : none;
}

size_t Writer::current_remaining() const { return cur_ < tensors_.size() ? tensors_[cur_].size - cur_written_ : 0; }

void Writer::finish() {
    YITI_ASSERT(out_);
    if (cur_ < tensors_.size()) {
        out_.reset();
        throw Error(strprintf("gguf: writing '%s': tensor '%s' is missing %zu bytes", out_path_.c_str(),
                              tensors_[cur_].name.c_str(), tensors_[cur_].size - cur_written_));
    }
    static const uint8_t zeros[256] = {};
    if (!tensors_.empty())
        while (pos_ < data_size_) stream_put(zeros, (size_t)std::min<uint64_t>(sizeof zeros, data_size_ - pos_));
    FILE* f = out_.release();
    if (fclose(f) != 0) throw Error(strprintf("gguf: writing '%s' failed: %s", out_path_.c_str(), strerror(errno)));
}

}  // namespace yiti::gguf
