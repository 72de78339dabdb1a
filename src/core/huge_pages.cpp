#include "core/huge_pages.h"

#include <sys/mman.h>

namespace yiti {

uint8_t* map_huge_pages(size_t bytes) {
    if (bytes == 0) return nullptr;
    const size_t len = huge_page_round(bytes);
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    madvise(p, len, MADV_HUGEPAGE);  // a request: without THP the memory still works
    return (uint8_t*)p;
}

void unmap_huge_pages(void* p, size_t bytes) {
    if (p) munmap(p, huge_page_round(bytes));
}

}  // namespace yiti
