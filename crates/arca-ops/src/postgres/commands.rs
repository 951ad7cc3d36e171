//! The arca commands a PostgreSQL server runs itself: `archive_command`
//! and `restore_command`, arca by its absolute path (the server runs them
//! with its own PATH) and the flags that reach this repository, never a
//! secret (the server's environment or ~/.aws provides those).

use arca_repo::Repository;

/// `arca wal-push` as archive_command runs it.
pub fn archive_command(repo: &Repository, reopen: &[String]) -> String {
    let mut args = vec![arca_exe(), "wal-push".into()];
    args.extend(repo_args(repo, reopen));
    let mut cmd: Vec<String> = args.iter().map(|s| shell_quote(s)).collect();
    cmd.push("%p".into());
    cmd.join(" ")
}

/// `arca wal-fetch` as restore_command runs it for `cluster`.
pub fn restore_command(
    repo: &Repository,
    reopen: &[String],
    cluster: &str,
    to_target: bool,
) -> String {
    let mut args = vec![arca_exe(), "wal-fetch".into()];
    args.extend(repo_args(repo, reopen));
    args.extend(["--cluster".into(), cluster.to_string()]);
    if to_target {
        args.push("--to-target".into());
    }
    let mut cmd: Vec<String> = args.iter().map(|s| shell_quote(s)).collect();
    cmd.extend(["%f".into(), "%p".into()]);
    cmd.join(" ")
}

fn arca_exe() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "arca".into())
}

/// The caller's flags, or the repository's location when it gave none.
fn repo_args(repo: &Repository, reopen: &[String]) -> Vec<String> {
    if !reopen.is_empty() {
        return reopen.to_vec();
    }
    let loc = match repo.location().local_path() {
        Some(p) => std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string(),
        None => repo.location().to_string(),
    };
    vec!["--repo".into(), loc]
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}
