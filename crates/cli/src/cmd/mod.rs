//! One entry point per subcommand.
mod info;

use crate::args::Command;

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Info { model } => info::run(&model),
    }
}

/// Maps an error to the process exit code: 2 for bad input, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let user_error = err.chain().any(|e| {
        e.downcast_ref::<scopedex_model::Error>().is_some()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    });
    if user_error {
        2
    } else {
        1
    }
}
