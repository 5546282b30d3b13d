//! `sealdump-send`: send a crash dump (file, stdin or /proc/vmcore) to a sealdump or netdumpd receiver.

fn main() -> std::process::ExitCode {
    sealdump_drivers::hosted::main()
}
