use std::process::ExitCode;

use anyhow::Result;

use crate::args::DeleteArgs;
use crate::output::print_json;

pub fn run(a: DeleteArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let _lock = repo.lock_shared("delete")?;
    let snap = repo.find_snapshot(&a.id)?;
    repo.delete_snapshot(&snap.id)?;
    if a.json {
        print_json(&serde_json::json!({"deleted": snap.id.to_hex()}))?;
    } else {
        println!(
            "deleted backup {}; run `arca prune` to free the space only it used",
            snap.id.short()
        );
    }
    Ok(ExitCode::SUCCESS)
}
