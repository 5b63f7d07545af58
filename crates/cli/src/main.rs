//! `scopedex`: precompute SAE feature activations over a corpus and serve them for search.
//!
//! `main` parses arguments and dispatches to one entry point per subcommand in `cmd/`; each
//! connects library pieces and holds no data loops of its own. Exit codes: 0 success, 2 bad
//! input (unknown file, malformed argument), 1 any other failure.
mod args;
mod cmd;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    exit_quietly_on_closed_pipe();
    let args = args::Cli::parse();
    init_logging(args.verbose);
    match cmd::run(args.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(cmd::exit_code(&err))
        }
    }
}

/// `scopedex search … | head`: once the reader has gone, stop with exit 0 (as ripgrep does)
/// instead of the panic `println!` raises on a closed pipe.
fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Where every command runs the model and the SAEs: the one place the device is chosen (the
/// CPU, f32, with the fused kernels).
fn backend() -> scopedex_model::Backend {
    scopedex_model::Backend::cpu()
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,scopedex=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCOPEDEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: a log redirected to a file gets no escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
