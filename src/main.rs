// The engine allocates many small, short-lived strings per event and
// decision; mimalloc serves them faster than the system allocator (see
// docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rcv::cli::main()
}
