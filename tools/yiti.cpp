#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: yiti <command> [options]\n");
        return 2;
    }
    return 0;
}
