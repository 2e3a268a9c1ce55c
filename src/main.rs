// The engine allocates many small, short-lived strings per event and
// decision, and with `--jobs` above 1 frees them on other threads than the
// ones that made them; jemalloc serves both patterns better than the system
// allocator (measured in docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    rcv::cli::main()
}
