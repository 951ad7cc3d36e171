use std::process::ExitCode;

use anyhow::Result;
use arca_ops::BackupOptions;

use crate::args::BackupArgs;
use crate::output::{backup_json, print_json};
use crate::progress::Bar;

pub fn run(a: BackupArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let bar = Bar::new("backup");
    let snap = arca_ops::backup(
        &repo,
        &BackupOptions {
            source: a.source,
            name: a.name,
            tags: a.tags,
            parallelism: a.par.get(),
            data_dir: a.pgdata,
            full: a.full,
            check_source: a.check_source,
            reopen: super::repo_flags(&a.repo)?,
            objects: a.objects.objects(),
            password_file: a.objects.password_file.clone(),
            users: a.users,
        },
        &bar,
    )?;
    bar.finish();
    if a.json {
        print_json(&backup_json(&snap, &repo.location().to_string()))?;
    } else {
        println!("{}", snap.id);
        // What the engine says of it (a MySQL backup: which consistency it
        // got); on stderr, so the id stays the only line of stdout.
        for line in arca_ops::describe(&snap) {
            eprintln!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
