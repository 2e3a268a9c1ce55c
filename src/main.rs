fn main() -> std::process::ExitCode {
    rcv::cli::main()
}
