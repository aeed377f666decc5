fn main() -> std::process::ExitCode {
    ytdlp_host::cli::main()
}
