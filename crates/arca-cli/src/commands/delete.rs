use std::process::ExitCode;

use anyhow::Result;

use crate::args::DeleteArgs;
use crate::output::print_json;

pub fn run(a: DeleteArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let _lock = repo.lock_shared("delete")?;
    // By id alone, without reading the manifest: a damaged one can go too.
    let id = if a.id == "latest" {
        repo.find_snapshot("latest")?.id
    } else {
        repo.resolve_id(&a.id)?
    };
    repo.delete_snapshot(&id)?;
    if a.json {
        print_json(&serde_json::json!({"deleted": id.to_hex()}))?;
    } else {
        println!(
            "deleted backup {}; run `arca prune` to free the space only it used",
            id.short()
        );
    }
    Ok(ExitCode::SUCCESS)
}
