//! One entry point per subcommand.
mod demo;
mod dump_activations;
mod encode;
pub mod explain;
pub mod export;
mod index;
mod info;
mod train_sae;
// Query commands (issue 7): each prints a `scopedex_server::views` body (`--json`) or a
// human rendering of it (`render`).
mod activate;
mod cooc;
mod render;
mod search;
mod serve;
mod similar;
mod stats;
mod top;

use crate::args::Command;

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Index(args) => index::run(args),
        Command::Merge {
            out,
            shards,
            keep_state,
            json,
        } => index::merge(&out, &shards, keep_state, json),
        Command::Reindex { index, json } => index::reindex(&index, json),
        Command::DropState { index } => index::drop_state(&index),
        Command::FabricateSae {
            out,
            hook_in,
            hook_out,
            d_model,
            d_sae,
            k,
            seed,
        } => {
            let spec = scopedex_sae::FabricateSpec {
                d_model,
                d_sae,
                k,
                hook_out: hook_out.unwrap_or_else(|| hook_in.clone()),
                hook_in,
                norm: (30.0, 30.0),
                seed,
            };
            scopedex_sae::fabricate_llama_scope(&out, &spec)?;
            Ok(())
        }
        Command::Info { model } => info::run(&model),
        Command::Export(command) => export::run(command),
        Command::Explain(args) => explain::run_explain(args),
        Command::Score(args) => explain::run_score(args),
        Command::Features(args) => explain::run_features(args),
        Command::ImportExplanations(args) => explain::run_import(args),
        Command::TrainSae(args) => train_sae::run(args),
        Command::Demo { index, addr } => demo::run(&index, &addr),
        Command::Serve(args) => serve::run(args),
        Command::Top(args) => top::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Cooc(args) => cooc::run(args),
        Command::Search(args) => search::run(args),
        Command::Similar(args) => similar::run(args),
        Command::Activate(args) => activate::run(args),
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

/// Maps an error to the process exit code: 2 for bad input (every library crate's
/// `is_user_error`), 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let user_error = err.chain().any(|e| {
        e.downcast_ref::<scopedex_model::Error>()
            .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<scopedex_sae::Error>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<scopedex_index::Error>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<scopedex_store::Error>().is_some_and(|e| {
                e.is_user_error()
                    || matches!(
                        e,
                        scopedex_store::Error::MissingIndex { .. }
                            | scopedex_store::Error::FormatVersion { .. }
                    )
            })
            || e.downcast_ref::<scopedex_server::ApiError>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<scopedex_train::Error>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                use std::io::ErrorKind as K;
                // A path the user gave that is missing, unreadable, of the wrong kind or
                // malformed; other I/O failures (disk full, a port in use) are the machine's.
                matches!(
                    io.kind(),
                    K::NotFound
                        | K::PermissionDenied
                        | K::NotADirectory
                        | K::IsADirectory
                        | K::InvalidInput
                        | K::InvalidData
                        | K::UnexpectedEof
                )
            })
            || e.downcast_ref::<scopedex_export::Error>()
                .is_some_and(|e| e.is_user_error())
            || e.downcast_ref::<scopedex_corpus::Error>().is_some()
            || e.downcast_ref::<crate::InputError>().is_some()
    });
    if user_error {
        2
    } else {
        1
    }
}
