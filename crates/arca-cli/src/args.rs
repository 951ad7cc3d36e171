//! Raw command-line flags. `commands` turns them into library calls; no clap
//! type leaks further in.

use std::path::PathBuf;

use arca_repo::Secret;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "arca",
    version,
    about = "Backup and restore for SQLite, PostgreSQL, MySQL and MariaDB into a deduplicated, compressed repository"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug). ARCA_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The file of named repositories (`arca repo`) [default:
    /// $XDG_CONFIG_HOME/arca/arca.toml, else ~/.config/arca/arca.toml].
    #[arg(long, global = true, env = "ARCA_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository.
    Init(InitArgs),
    /// Back up a database into the repository; prints the new backup's id.
    Backup(BackupArgs),
    /// List backups (with an ID: one backup, checking that its files are present).
    List(ListArgs),
    /// Verify the repository: structure, or every byte with --read-data.
    Check(CheckArgs),
    /// Restore a backup (an id, a unique id prefix, or `latest`).
    Restore(RestoreArgs),
    /// Delete a backup; `prune` then frees the space only it used.
    Delete(DeleteArgs),
    /// Remove data no backup references, and leftovers of interrupted runs.
    Prune(PruneArgs),
    /// Delete the backups a retention policy does not keep (each source on
    /// its own; the newest is always kept); --prune then frees their space.
    #[command(after_help = FORGET_HELP)]
    Forget(ForgetArgs),
    /// Show Arca's main job on a sample SQLite database, step by step.
    Demo(DemoArgs),
    /// PostgreSQL archive_command: `arca wal-push --repo R %p`.
    #[command(name = "wal-push")]
    WalPush(WalPushArgs),
    /// PostgreSQL restore_command: `arca wal-fetch --repo R %f %p`.
    #[command(name = "wal-fetch")]
    WalFetch(WalFetchArgs),
    /// Stream WAL over a replication slot into the repository until stopped
    /// (SIGINT/SIGTERM), so the archive is seconds behind the server.
    #[command(name = "wal-stream")]
    WalStream(WalStreamArgs),
    /// Archive a MySQL/MariaDB server's binary log as a replica reads it,
    /// until stopped (SIGINT/SIGTERM) or, with --until-now, up to the
    /// server's current position.
    #[command(name = "binlog-stream")]
    BinlogStream(BinlogStreamArgs),
    /// Named points in time (PostgreSQL restore points): create, show, drop, restore.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Named repositories: `repo add NAME URL`, then `--repo NAME` anywhere.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// The way back from damage `check` names: `repair index`, then `repair backups`.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Compare the rows of two MySQL/MariaDB servers chunk by chunk: a
    /// primary and its replica, or a database and a restored copy.
    #[command(after_help = COMPARE_HELP)]
    Compare(CompareArgs),
    /// Run the daemon: the plans of a configuration file on their schedules,
    /// jobs on request, an HTTP API and Prometheus metrics.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Run one of StarRocks' backup statements against `arca serve`.
    #[command(after_help = SQL_HELP)]
    Sql(SqlArgs),
}

impl Command {
    /// The repository flags of the verbs that take them.
    pub fn repo_args_mut(&mut self) -> Option<&mut RepoArgs> {
        match self {
            Command::Init(a) => Some(&mut a.repo),
            Command::Backup(a) => Some(&mut a.repo),
            Command::List(a) => Some(&mut a.repo),
            Command::Check(a) => Some(&mut a.repo),
            Command::Restore(a) => Some(&mut a.repo),
            Command::Delete(a) => Some(&mut a.repo),
            Command::Prune(a) => Some(&mut a.repo),
            Command::Forget(a) => Some(&mut a.repo),
            Command::WalPush(a) => Some(&mut a.repo),
            Command::WalFetch(a) => Some(&mut a.repo),
            Command::WalStream(a) => Some(&mut a.repo),
            Command::BinlogStream(a) => Some(&mut a.repo),
            Command::Snapshot(c) => Some(c.repo_args_mut()),
            Command::Repair(RepairCommand::Index(a)) => Some(&mut a.repo),
            Command::Repair(RepairCommand::Backups(a)) => Some(&mut a.repo),
            Command::Demo(_)
            | Command::Repo(_)
            | Command::Compare(_)
            | Command::Serve(_)
            | Command::Sql(_) => None,
        }
    }
}

/// Where the repository is: `--repo PATH|URL`, or mo_br's spellings
/// `--backup_dir filesystem --path P` and `--backup_dir s3 --bucket B --filepath P`.
#[derive(Debug, Args, Clone)]
pub struct RepoArgs {
    /// Repository: a path, file:///PATH, s3://BUCKET/PREFIX, gs://, azblob://,
    /// webhdfs://HOST:PORT/PATH, cos:// or oss://; or the NAME of a registered
    /// repository (`arca repo add`), `repo:NAME` to be explicit. Also from
    /// ARCA_REPO.
    #[arg(
        long,
        env = "ARCA_REPO",
        hide_env_values = true,
        value_name = "PATH|URL"
    )]
    pub repo: Option<String>,
    /// mo_br: the kind of backup location: `filesystem` (with --path) or `s3`
    /// (with --bucket and --filepath).
    #[arg(long = "backup_dir", value_name = "KIND", hide = true)]
    pub backup_dir: Option<String>,
    /// mo_br: the backup location for --backup_dir filesystem.
    #[arg(long = "path", value_name = "PATH", hide = true)]
    pub path: Option<String>,
    /// Object storage endpoint, e.g. http://127.0.0.1:8333 [default:
    /// AWS_ENDPOINT_URL, else AWS].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Bucket, with --filepath: the same as --repo s3://BUCKET/FILEPATH.
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,
    /// Folder inside --bucket.
    #[arg(long, value_name = "PREFIX")]
    pub filepath: Option<String>,
    /// S3 path-style addressing (ENDPOINT/BUCKET/KEY), as MinIO wants;
    /// endpoints other than AWS, Alibaba and Tencent get it anyway.
    #[arg(long = "is_minio", alias = "path-style")]
    pub is_minio: bool,
    /// IAM role to assume (S3, OSS).
    #[arg(long = "role_arn", alias = "role-arn", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Access key id. Shows in the process list: prefer AWS_ACCESS_KEY_ID
    /// or ~/.aws/credentials.
    #[arg(long = "access_key_id", alias = "access-key-id", value_name = "ID")]
    pub access_key_id: Option<Secret>,
    /// Secret access key. Shows in the process list: prefer
    /// AWS_SECRET_ACCESS_KEY or ~/.aws/credentials.
    #[arg(
        long = "secret_access_key",
        alias = "secret-access-key",
        value_name = "KEY"
    )]
    pub secret_access_key: Option<Secret>,
    /// Seconds to wait for another arca holding a conflicting lock.
    #[arg(long, value_name = "SECONDS", default_value_t = arca_ops::repos::DEFAULT_LOCK_WAIT.as_secs())]
    pub lock_wait: u64,
    /// The global `--config`, copied here so `--repo NAME` can be looked up.
    #[arg(skip)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Register a repository under a name; `--repo NAME` then reaches it.
    /// Does not contact the store.
    Add(Box<RepoAddArgs>),
    /// List the registered repositories (never their secrets).
    List(RepoListArgs),
    /// Forget a registered repository; its data is not touched.
    Remove(RepoRemoveArgs),
}

/// `arca repo add NAME URL` with the store options `--repo` takes, and where
/// the credentials come from when the repository is used.
#[derive(Debug, Args)]
pub struct RepoAddArgs {
    /// The name: letters, digits, `-`, `_` and `.`, starting with a letter or digit.
    pub name: String,
    /// A path, file:///PATH, s3://BUCKET/PREFIX, gs://, azblob://,
    /// webhdfs://HOST:PORT/PATH, cos:// or oss://. A relative path is stored
    /// as an absolute one.
    #[arg(value_name = "PATH|URL")]
    pub url: String,
    /// Object storage endpoint, e.g. http://127.0.0.1:8333.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// S3 region.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// S3 path-style addressing (ENDPOINT/BUCKET/KEY), as MinIO wants.
    #[arg(long = "is_minio", alias = "path-style")]
    pub is_minio: bool,
    /// IAM role to assume (S3, OSS).
    #[arg(long = "role_arn", alias = "role-arn", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Access key id, stored in the config file (an id is not a secret; use
    /// --access-key-id-env or --access-key-id-file to keep it out).
    #[arg(
        long = "access_key_id",
        alias = "access-key-id",
        value_name = "ID",
        conflicts_with_all = ["access_key_id_env", "access_key_id_file"]
    )]
    pub access_key_id: Option<Secret>,
    /// Read the access key id from this environment variable when the
    /// repository is used.
    #[arg(
        long = "access-key-id-env",
        value_name = "VAR",
        conflicts_with = "access_key_id_file"
    )]
    pub access_key_id_env: Option<String>,
    /// Read the access key id from this file when the repository is used.
    #[arg(long = "access-key-id-file", value_name = "PATH")]
    pub access_key_id_file: Option<PathBuf>,
    /// Read the secret access key from this environment variable when the
    /// repository is used.
    #[arg(
        long = "secret-env",
        value_name = "VAR",
        conflicts_with_all = ["secret_file", "secret_access_key"]
    )]
    pub secret_env: Option<String>,
    /// Read the secret access key from this file (mode 0600) when the
    /// repository is used.
    #[arg(
        long = "secret-file",
        value_name = "PATH",
        conflicts_with = "secret_access_key"
    )]
    pub secret_file: Option<PathBuf>,
    /// Secret access key to write into the config file in clear: only with
    /// --store-secret-in-config. Prefer --secret-env or --secret-file.
    #[arg(
        long = "secret_access_key",
        alias = "secret-access-key",
        value_name = "KEY"
    )]
    pub secret_access_key: Option<Secret>,
    /// Write --secret_access_key into the config file (which is then mode 0600).
    #[arg(long = "store-secret-in-config")]
    pub store_secret_in_config: bool,
}

#[derive(Debug, Args)]
pub struct RepoListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RepoRemoveArgs {
    /// The registered name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Block size in bytes; 0 uses each database's own page size.
    #[arg(long, default_value_t = 0)]
    pub block_size: u32,
    /// zstd level of files and pages: negative is faster, higher is
    /// smaller [default: 3]. Also the rows' level unless
    /// --rows-compression-level is given.
    #[arg(long, allow_hyphen_values = true)]
    pub compression_level: Option<i32>,
    /// zstd level of a logical backup's rows (MySQL) [default: 1, or
    /// --compression-level when that is given].
    #[arg(long, allow_hyphen_values = true)]
    pub rows_compression_level: Option<i32>,
    /// Raw bytes of new blocks compressed together.
    #[arg(long, default_value_t = arca_repo::config::DEFAULT_FRAME_SIZE)]
    pub frame_size: u32,
    /// Target pack file size in bytes.
    #[arg(long, default_value_t = arca_repo::config::DEFAULT_PACK_SIZE)]
    pub pack_size: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The database: sqlite://PATH, postgres://USER@HOST:PORT/DB or
    /// mysql://USER@HOST:PORT[/DB] (passwords from PGPASSWORD or ~/.pgpass,
    /// MYSQL_PWD or --password-file rather than the URL, which `ps` shows).
    #[arg(long, value_name = "URL")]
    pub source: String,
    #[command(flatten)]
    pub objects: ObjectArgs,
    /// MySQL: take the server's users and grants too.
    #[arg(long)]
    pub users: bool,
    /// PostgreSQL: the data directory on this host [default: the server's
    /// data_directory].
    #[arg(long, value_name = "PATH")]
    pub pgdata: Option<PathBuf>,
    /// PostgreSQL: read every file, also those whose size and modification
    /// time say they did not change since the last backup.
    #[arg(long)]
    pub full: bool,
    /// SQLite: run `PRAGMA quick_check` on the source first (reads it once
    /// more). A source that fails is still backed up, marked as such.
    #[arg(long)]
    pub check_source: bool,
    /// A name for this backup.
    #[arg(long)]
    pub name: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub par: Parallelism,
    /// Print one JSON object instead of the id.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Show one backup and check that its files are present.
    pub id: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Check one backup only.
    pub id: Option<String>,
    /// Read every pack and verify every blob's hash.
    #[arg(long)]
    pub read_data: bool,
    #[command(flatten)]
    pub par: Parallelism,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs themselves (reads every pack).
    Index(RepairIndexArgs),
    /// Remove backups that cannot be restored whole (damaged manifest,
    /// missing or, with --read-data, damaged blocks), so the rest stay usable.
    Backups(RepairBackupsArgs),
}

#[derive(Debug, Args)]
pub struct RepairIndexArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub par: Parallelism,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RepairBackupsArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Read every pack, so damaged blocks count too, not only missing ones.
    #[arg(long)]
    pub read_data: bool,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub par: Parallelism,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Backup id, unique prefix, or `latest`. Without it (mo_br's restore
    /// of a backup given by its location), the repository must hold one backup.
    pub id: Option<String>,
    /// Target database file (or an existing directory to restore into), or
    /// for a MySQL backup the server: mysql://USER@HOST:PORT.
    #[arg(long, value_name = "PATH|URL")]
    pub to: Option<PathBuf>,
    /// MySQL: initialise a new MariaDB server in DIR, start it on loopback
    /// (on --port, or a free one), restore into it and print how to
    /// connect; the source is not touched.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["to", "restore_path"])]
    pub to_instance: Option<PathBuf>,
    /// Overwrite an existing target.
    #[arg(long)]
    pub force: bool,
    /// mo_br: the kind of restore target; `filesystem` with --restore_path.
    #[arg(long = "restore_dir", value_name = "KIND", hide = true)]
    pub restore_dir: Option<String>,
    /// mo_br: the restore target for --restore_dir filesystem.
    #[arg(long = "restore_path", value_name = "PATH", hide = true)]
    pub restore_path: Option<PathBuf>,
    #[command(flatten)]
    pub pitr: PitrArgs,
    #[command(flatten)]
    pub objects: ObjectArgs,
    /// MySQL: restore a database or table under a new name: OLD:NEW or
    /// DB.TABLE:DB.TABLE2 (repeatable); names inside views, routines and
    /// triggers follow.
    #[arg(long, value_name = "OLD:NEW")]
    pub rename: Vec<String>,
    /// MySQL: drop and restore tables the target has already (without it,
    /// they are refused before anything is written).
    #[arg(long)]
    pub replace: bool,
    /// MySQL: restore the users and grants the backup took (`--users`).
    #[arg(long)]
    pub users: bool,
    #[command(flatten)]
    pub par: Parallelism,
    #[arg(long)]
    pub json: bool,
}

/// Which databases and tables (MySQL).
#[derive(Debug, Args, Clone, Default)]
pub struct ObjectArgs {
    /// MySQL: only these databases (comma-separated).
    #[arg(long, value_name = "DB,…", value_delimiter = ',')]
    pub databases: Vec<String>,
    /// MySQL: only these tables (comma-separated DB.TABLE).
    #[arg(long, value_name = "DB.TABLE,…", value_delimiter = ',')]
    pub tables: Vec<String>,
    /// MySQL: leave these tables out (comma-separated DB.TABLE).
    #[arg(long, value_name = "DB.TABLE,…", value_delimiter = ',')]
    pub exclude_tables: Vec<String>,
    /// MySQL: a file whose first line is the server's password (instead of
    /// the URL or MYSQL_PWD).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

impl ObjectArgs {
    pub fn objects(&self) -> arca_ops::Objects {
        arca_ops::Objects {
            databases: self.databases.clone(),
            tables: self.tables.clone(),
            exclude_tables: self.exclude_tables.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Backup id or unique prefix.
    pub id: String,
    /// Delete a backup even if named snapshots need it as their base
    /// (they can no longer be restored).
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[arg(long)]
    pub json: bool,
}

const FORGET_HELP: &str = "\
A backup is kept if any rule keeps it, and the table lists every reason. \
Whatever the rules, each source keeps its newest backup (and the --keep-min \
newest), and a backup a named snapshot needs as its base. Days, weeks (ISO) \
and months are counted in --timezone. Damaged backups are never forgotten. \
Without --prune the space only the forgotten backups used stays until \
`arca prune`.";

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Only this source's backups: as `arca list --json` shows it, or as
    /// given to `arca backup --source` [default: every source, each on its own].
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// The purge period: keep every backup started in the last D days (7
    /// to 365) and, where the repository archives the source's log, the
    /// backup a restore to D days ago starts from.
    #[arg(long, value_name = "D")]
    pub purge_after_days: Option<u32>,
    /// Keep the N newest backups.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Whatever the rules say, keep the N newest backups of each source.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub keep_min: u32,
    /// The zone days, weeks and months are counted in, e.g. Europe/Berlin
    /// or UTC [default: this machine's].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Show what would be forgotten; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then prune: free the space only the forgotten backups used, and
    /// expire the log no remaining backup needs.
    #[arg(long)]
    pub prune: bool,
    /// Print the decisions as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's database and repository go.
    #[arg(long, default_value = "arca-demo")]
    pub dir: PathBuf,
    /// Size of the sample database in MiB.
    #[arg(long, default_value_t = 48)]
    pub size_mb: u64,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct Parallelism {
    /// Worker threads for hashing, compression and I/O; for restore, reads in flight (default: CPU cores; four times that for restore).
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
}

impl Parallelism {
    /// For CPU-bound work (backup, check): one thread a core.
    pub fn get(&self) -> usize {
        self.or(1)
    }

    /// For restore: reads in flight, four a core. Reads held in memory
    /// grow only when the workers wait for them, so more reads cost memory
    /// only where the store is slow (from SeaweedFS on loopback, 8 reads on
    /// 2 cores restored in 1.59–1.69 s where 4 took 1.75–2.08 s; the same on
    /// disk).
    pub fn get_for_restore(&self) -> usize {
        self.or(4)
    }

    fn or(&self, per_core: usize) -> usize {
        self.parallelism.filter(|&n| n > 0).unwrap_or_else(|| {
            per_core * std::thread::available_parallelism().map_or(2, |n| n.get())
        })
    }
}

/// PostgreSQL point-in-time restore: where recovery stops, and whether to
/// start the restored cluster.
#[derive(Debug, Args, Clone, Default)]
pub struct PitrArgs {
    /// Recover to this time, "YYYY-MM-DD HH:MM:SS[.ffffff][+TZ]" (without a
    /// zone: this machine's). MySQL: the last transaction committed in or
    /// before that second (the binary log's times are whole seconds).
    #[arg(long, value_name = "TIME")]
    pub target_time: Option<String>,
    /// MySQL: replay the binary log up to and including this transaction
    /// (MariaDB's DOMAIN-SERVER-SEQUENCE, MySQL's UUID:N).
    #[arg(long, value_name = "GTID")]
    pub target_gtid: Option<String>,
    /// PostgreSQL: recover to this WAL position (e.g. 0/16B3748).
    #[arg(long, value_name = "LSN")]
    pub target_lsn: Option<String>,
    /// PostgreSQL: recover to a named snapshot (`arca snapshot create`).
    #[arg(long, value_name = "NAME")]
    pub target_snapshot: Option<String>,
    /// PostgreSQL: start the restored cluster as a temporary instance (it
    /// archives nothing) and print how to connect.
    #[arg(long)]
    pub start: bool,
    /// PostgreSQL: the port the restored cluster listens on [default with
    /// --start: a free one].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// PostgreSQL: keep the source's archive settings, for a restore that is
    /// to become the primary. Without it the restored cluster archives
    /// nothing (archive_mode = off), so a copy cannot write into the
    /// repository it came from.
    #[arg(long, conflicts_with = "start")]
    pub keep_archiving: bool,
    /// PostgreSQL: the timeline recovery follows: a number (as `arca list`
    /// shows) or latest [default: the backup's own].
    #[arg(long, value_name = "TIMELINE")]
    pub target_timeline: Option<String>,
    /// PostgreSQL: what the restored cluster does at the target: promote
    /// (become writable) or pause (stay read-only in recovery, to look
    /// first; SELECT pg_wal_replay_resume() then promotes it).
    #[arg(long, value_name = "ACTION", value_parser = ["promote", "pause"])]
    pub target_action: Option<String>,
}

#[derive(Debug, Args)]
pub struct WalPushArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The WAL file (archive_command's %p, relative to the data directory).
    #[arg(value_name = "WAL_FILE")]
    pub wal_file: PathBuf,
    /// The data directory [default: the working directory, as archive_command has].
    #[arg(long, value_name = "PATH")]
    pub pgdata: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WalFetchArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The WAL file's name (restore_command's %f).
    pub name: String,
    /// Where to write it (restore_command's %p).
    pub dest: PathBuf,
    /// The cluster's system identifier [default: from global/pg_control in
    /// --pgdata or the working directory].
    #[arg(long, value_name = "ID")]
    pub cluster: Option<String>,
    /// The data directory being recovered [default: the working directory].
    #[arg(long, value_name = "PATH")]
    pub pgdata: Option<PathBuf>,
    /// Recovery has a target (PostgreSQL 13 or later, which fails a recovery
    /// that ends before its target): a missing segment with later ones
    /// archived ends the WAL instead of aborting recovery, since recovery
    /// reads ahead past a target that lies before the gap.
    #[arg(long)]
    pub to_target: bool,
}

#[derive(Debug, Args)]
pub struct WalStreamArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The server: postgres://USER@HOST:PORT/DB (or a socket directory as
    /// host), as a user with the REPLICATION attribute; the password from
    /// PGPASSWORD or ~/.pgpass rather than the URL, which `ps` shows.
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The physical replication slot to stream from; created if missing.
    #[arg(long, value_name = "NAME", default_value = "arca")]
    pub slot: String,
    /// Seconds between status reports to the server; while WAL keeps
    /// arriving, the growing segment is stored at least this often.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub status_interval: u64,
}

#[derive(Debug, Args)]
pub struct BinlogStreamArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The server: mysql://USER@HOST:PORT, as a user with REPLICATION SLAVE
    /// and REPLICATION CLIENT (MariaDB: BINLOG MONITOR); the password from
    /// --password-file or MYSQL_PWD rather than the URL, which `ps` shows.
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// A file whose first line is the password.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Archive up to the server's position now, then exit (for cron).
    #[arg(long)]
    pub until_now: bool,
    /// Start at the server's current position, not where the archive
    /// ends: after the server purged a log that was never archived.
    #[arg(long)]
    pub from_now: bool,
    /// The longest, in seconds, a committed transaction waits to be stored.
    #[arg(long, value_name = "SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seal_interval: u64,
    /// The server id announced to the server, unique among its replicas.
    #[arg(long, value_name = "N", default_value_t = 1_095_910_209)]
    pub replica_server_id: u32,
    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Record a named point in time (a restore point in the WAL); copies no data.
    Create(SnapshotCreateArgs),
    /// List named points, optionally one (--sname) or those in a time range.
    Show(SnapshotShowArgs),
    /// Forget a named point.
    Drop(SnapshotDropArgs),
    /// Restore the cluster as it was at a named point.
    Restore(SnapshotRestoreArgs),
}

impl SnapshotCommand {
    pub fn repo_args_mut(&mut self) -> &mut RepoArgs {
        match self {
            SnapshotCommand::Create(a) => &mut a.repo,
            SnapshotCommand::Show(a) => &mut a.repo,
            SnapshotCommand::Drop(a) => &mut a.repo,
            SnapshotCommand::Restore(a) => &mut a.repo,
        }
    }
}

#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The cluster: postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The snapshot's name (unique in the repository).
    #[arg(long)]
    pub sname: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotShowArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Only this snapshot.
    #[arg(long)]
    pub sname: Option<String>,
    /// Only snapshots at or after this time ("YYYY-MM-DD HH:MM:SS[+TZ]").
    #[arg(long = "beginTs", alias = "begin-ts", value_name = "TIME")]
    pub begin_ts: Option<String>,
    /// Only snapshots at or before this time.
    #[arg(long = "endTs", alias = "end-ts", value_name = "TIME")]
    pub end_ts: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotDropArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[arg(long)]
    pub sname: String,
}

#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[arg(long)]
    pub sname: String,
    /// The data directory to create.
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
    /// Overwrite an existing data directory (no server may be running on it).
    #[arg(long)]
    pub force: bool,
    /// Start the restored cluster as a temporary instance.
    #[arg(long)]
    pub start: bool,
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    #[command(flatten)]
    pub par: Parallelism,
}

const COMPARE_HELP: &str = "\
Both servers compute, per range of a table's primary key, a row count and a \
sum of row hashes (NULL, empty strings and bytes all count); ranges that \
differ are read row by row. When the target replicates from the source, it \
is read once it has applied the source's position, and a range the source \
changed meanwhile is compared again, so a primary that keeps writing shows \
no false differences.

Exit status, as diff's: 0 identical; 1 the servers differ (tables, ranges \
and rows are printed); 2 the comparison failed (one `error:` line on stderr \
says why). \
It only reads, so Ctrl-C stops it at once.";

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The primary (or the original): mysql://USER@HOST:PORT (passwords
    /// from --password-file or MYSQL_PWD rather than the URL, which `ps`
    /// shows).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The replica (or the copy): mysql://USER@HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// Only these databases (comma-separated) [default: all but the
    /// servers' own, on either side].
    #[arg(long, value_name = "DB,…", value_delimiter = ',')]
    pub databases: Vec<String>,
    /// Only these tables (comma-separated DB.TABLE).
    #[arg(long, value_name = "DB.TABLE,…", value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Leave these tables out (comma-separated DB.TABLE).
    #[arg(
        long,
        alias = "exclude-tables",
        value_name = "DB.TABLE,…",
        value_delimiter = ','
    )]
    pub ignore_tables: Vec<String>,
    /// Tables compared at once, on as many connections to each server;
    /// more than one holds commits for a moment to open them at one point,
    /// which needs the RELOAD privilege.
    #[arg(long, alias = "parallelism", value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// A file whose first line is the password of each server whose URL
    /// has none.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Rows per range compared at once.
    #[arg(long, value_name = "N", default_value_t = arca_ops::mysql::CompareRequest::DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: u64,
    /// Rows that differ listed per table.
    #[arg(long, value_name = "N", default_value_t = arca_ops::mysql::CompareRequest::DEFAULT_MAX_ROWS)]
    pub max_rows: usize,
    /// Seconds the replica may take to reach the primary's position.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command's definition only when it parses one: check all.
    #[test]
    fn every_command_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

const SERVE_HELP: &str = "\
The configuration (TOML) names repositories, sources, plans and tokens:

  listen = \"127.0.0.1:7070\"
  [[repository]]
  name = \"local\"
  url = \"/var/backups/arca\"
  [[source]]
  name = \"app\"
  url = \"sqlite:///var/lib/app/app.db\"
  [[plan]]
  name = \"app-daily\"
  source = \"app\"
  repository = \"local\"
  schedule = \"daily 01:00\"      # hourly, every 6h, or cron; in timezone
  timezone = \"Europe/Berlin\"
  purge_after_days = 30
  [[token]]
  name = \"ops\"
  role = \"operator\"             # viewer | operator | admin
  sha256 = \"...\"                # printf %s TOKEN | sha256sum

docs/serve.md describes every key and the API (GET /api/v1/openapi.json).
SIGHUP reloads the file; SIGTERM cancels running jobs and exits.";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,
    /// Listen here instead of the file's `listen` (HOST:PORT; port 0 picks one).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Check the configuration, and that its repositories and sources
    /// answer, then exit.
    #[arg(long)]
    pub check_config: bool,
    /// Tests only: the schedule's clock starts here and moves only through
    /// POST /api/v1/test/clock.
    #[arg(long, hide = true, value_name = "TIME")]
    pub test_clock: Option<String>,
}

const SQL_HELP: &str = "\
Statements (a database is a source of the daemon, a repository one of its
repositories, a snapshot a backup's name or short id):
  SHOW REPOSITORIES
  CREATE REPOSITORY r WITH BROKER ON LOCATION \"s3://b/p\" PROPERTIES (\"aws.s3.access_key\" = \"..\", ...)
  DROP REPOSITORY r
  BACKUP SNAPSHOT db.name TO r [ON (TABLE t, ...)]
  SHOW BACKUP [FROM db]           CANCEL BACKUP [FROM db]
  SHOW SNAPSHOT ON r [WHERE SNAPSHOT = 'name']
  RESTORE SNAPSHOT db.name FROM r PROPERTIES (\"backup_timestamp\" = \"...\"[, \"arca.to\" = \"/new/path\"])
  SHOW RESTORE [FROM db]          CANCEL RESTORE [FROM db]";

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement.
    pub statement: String,
    /// The daemon's address.
    #[arg(long, env = "ARCA_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// A file holding the token (else ARCA_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}
