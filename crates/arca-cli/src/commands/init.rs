use std::process::ExitCode;

use anyhow::Result;
use arca_repo::{InitOptions, Repository};

use crate::args::InitArgs;
use crate::output::print_json;

pub fn run(a: InitArgs) -> Result<ExitCode> {
    let loc = super::location(&a.repo)?;
    let opts = InitOptions {
        block_size: a.block_size,
        frame_size: a.frame_size,
        pack_size: a.pack_size,
        compression_level: a
            .compression_level
            .unwrap_or(arca_repo::config::DEFAULT_COMPRESSION_LEVEL),
        rows_compression_level: a
            .rows_compression_level
            .or(a.compression_level)
            .unwrap_or(arca_repo::config::DEFAULT_ROWS_COMPRESSION_LEVEL),
    };
    let repo = Repository::init(&loc, &opts)?;
    if a.json {
        print_json(
            &serde_json::json!({"id": repo.config.id.to_hex(), "location": loc.to_string()}),
        )?;
    } else {
        println!("created repository {} at {loc}", repo.config.id.short());
    }
    Ok(ExitCode::SUCCESS)
}
