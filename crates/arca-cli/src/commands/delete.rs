use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::args::DeleteArgs;
use crate::output::print_json;

pub fn run(a: DeleteArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let _lock = repo.lock_shared("delete")?;
    // By id alone, without reading the manifest: a damaged one can go too.
    let id = if a.id == "latest" {
        repo.find_manifest("latest")?.id
    } else {
        repo.resolve_id(&a.id)?
    };
    // Named points that no other backup reaches. A manifest that cannot be
    // read is not among `snaps`, and is deleted unchecked.
    let (snaps, _) = repo.manifests_and_damage()?;
    let orphaned: Vec<String> = snaps
        .iter()
        .find(|s| s.id == id)
        .map(|snap| arca_ops::points_only_based_on(snap, &snaps))
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.name)
        .collect();
    if !orphaned.is_empty() && !a.force {
        bail!(
            "backup {} is the base of named snapshot(s) {} (no other backup ends before them): drop them first (`arca snapshot drop --sname {}`) or pass --force",
            id.short(),
            orphaned.join(", "),
            orphaned[0]
        );
    }
    repo.delete_manifest(&id)?;
    if !orphaned.is_empty() && !a.json {
        eprintln!(
            "warning: named snapshot(s) {} can no longer be restored",
            orphaned.join(", ")
        );
    }
    if a.json {
        print_json(
            &serde_json::json!({"deleted": id.to_hex(), "unrestorable_snapshots": orphaned}),
        )?;
    } else {
        println!(
            "deleted backup {}; run `arca prune` to free the space only it used",
            id.short()
        );
    }
    Ok(ExitCode::SUCCESS)
}
