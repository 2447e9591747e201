//! The bare-Pingora baseline with the system allocator (see `weir_bench::bare`).

fn main() {
    weir_bench::bare::run();
}
