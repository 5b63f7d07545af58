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
    PLACEMENT
        .set((args.device.clone(), args.dtype.clone()))
        .expect("set once, before any command runs");
    match cmd::run(args.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if format!("{err:#}").contains("OUT_OF_MEMORY") {
                // The GPU ran out of memory. `index` already retried in halves down to one
                // context, so what is left to change is the context, the dtype or the batch
                // of the other commands.
                eprintln!(
                    "hint: the device ran out of memory; use a smaller --ctx-len, --dtype bf16 \
                     to halve the weights, or (other than `index`, which retries smaller \
                     batches itself) a smaller --batch-size"
                );
            }
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

/// `--device` and `--dtype` as given.
static PLACEMENT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Where every command runs the model and the SAEs: the one place the device and dtype are
/// chosen (`--device`, `--dtype`; the default is the CPU in f32 with the fused kernels).
fn backend() -> anyhow::Result<scopedex_model::Backend> {
    let (device, dtype) = PLACEMENT
        .get()
        .map(|(d, t)| (d.as_str(), t.as_str()))
        .unwrap_or(("cpu", "f32"));
    let device = parse_device(device)?;
    let dtype = match dtype {
        "f32" => candle_core::DType::F32,
        "bf16" => candle_core::DType::BF16,
        "f16" => candle_core::DType::F16,
        other => {
            return Err(InputError(format!("--dtype {other:?}: expected f32, bf16 or f16")).into())
        }
    };
    Ok(scopedex_model::Backend::new(&device, dtype)?)
}

/// `cpu`, `cuda` (device 0) or `cuda:N`.
fn parse_device(spec: &str) -> anyhow::Result<candle_core::Device> {
    let ordinal = match spec {
        "cpu" => return Ok(candle_core::Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(
                    InputError(format!("--device {other:?}: expected cpu, cuda or cuda:N")).into(),
                )
            }
        },
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(InputError(format!(
            "--device {spec}: this scopedex was built without CUDA; build it with \
             `cargo build --release --features cuda` (see README, \"GPU\")"
        ))
        .into());
    }
    candle_core::Device::new_cuda(ordinal).map_err(|e| {
        InputError(format!(
            "--device {spec}: no usable CUDA device {ordinal} (is the NVIDIA driver installed, \
             and does `nvidia-smi` list the GPU?): {e}"
        ))
        .into()
    })
}

/// A bad command-line value: exit code 2 like other input errors.
#[derive(Debug)]
pub(crate) struct InputError(pub(crate) String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

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
