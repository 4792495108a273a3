// narrow_loops.h: the inner loop of narrow.c, compiled once per instruction set (V names each copy).

typedef float V(n8) __attribute__((vector_size(32), aligned(4)));

// y[0, n) += w * x[0, n)
static void V(axpy)(int64_t n, float w, const float *x, float *y) {
    V(n8) wv = {w, w, w, w, w, w, w, w};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V(n8) a, b;
        memcpy(&a, x + i, sizeof a);
        memcpy(&b, y + i, sizeof b);
        b += wv * a;
        memcpy(y + i, &b, sizeof b);
    }
    for (; i < n; i++) y[i] += w * x[i];
}
