//! The bare-Pingora baseline with weir's allocator, so that weir's ratio to it is its design's
//! cost and not the allocator's (see `weir_bench::bare`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    weir_bench::bare::run();
}
