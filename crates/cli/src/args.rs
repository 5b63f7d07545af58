//! Command-line arguments: one variant per subcommand.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Precompute sparse-autoencoder feature activations over a corpus and serve them for search.
#[derive(Debug, Parser)]
#[command(name = "scopedex", version, about)]
pub struct Cli {
    /// More log output (-v info, -vv debug); SCOPEDEX_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a model file (architecture, layers, width, vocabulary) as JSON.
    Info {
        /// A GGUF model file.
        #[arg(long)]
        model: PathBuf,
    },
}
