//! The `civex` command: see `civex --help`.

fn main() -> std::process::ExitCode {
    civex_cli::main()
}
