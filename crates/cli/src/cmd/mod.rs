//! One entry point per subcommand.
mod demo;
mod dump_activations;
mod encode;
mod index;
mod info;
mod train_sae;

use crate::args::Command;

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Index(args) => index::run(args),
        Command::Merge { out, shards } => index::merge(&out, &shards),
        Command::Reindex { index } => index::reindex(&index),
        Command::Info { model } => info::run(&model),
        Command::TrainSae(args) => train_sae::run(args),
        Command::Demo { index, addr } => demo::run(&index, &addr),
        Command::Encode {
            sae,
            id,
            input,
            tensor,
            out,
            metrics,
            target,
        } => encode::run(
            &sae,
            id.as_deref(),
            &input,
            &tensor,
            target.as_deref(),
            &out,
            metrics,
        ),
        Command::DumpActivations {
            model,
            hooks,
            input,
            ctx_len,
            out,
        } => dump_activations::run(&model, &hooks, &input, ctx_len, &out),
    }
}

/// Maps an error to the process exit code: 2 for bad input, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let user_error = err.chain().any(|e| {
        e.downcast_ref::<scopedex_model::Error>().is_some()
            || e.downcast_ref::<scopedex_sae::Error>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<scopedex_index::Error>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<scopedex_store::Error>()
                .is_some_and(|e| e.is_caller_error())
            || e.downcast_ref::<scopedex_train::Error>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    });
    if user_error {
        2
    } else {
        1
    }
}
