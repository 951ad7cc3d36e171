//! `compare`: whether two MySQL-protocol servers hold the same rows (a
//! primary and its replica, or a database and a restored copy), for the
//! CLI and the daemon alike. The engine does the work; this parses the
//! request and hands back its serialisable report.

use std::path::PathBuf;
use std::time::Duration;

use arca_engine::mysql::{self as my, CompareOptions, MysqlSource, Selection};
use arca_repo::Cancel;

pub use arca_engine::mysql::{
    ChunkDifference, Mode, Problem, Report, RowDifference, RowKind, TableDifference,
};

use crate::{Objects, Result};

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    /// The primary (or the original): `mysql://USER@HOST:PORT`.
    pub source: String,
    /// The replica (or the copy).
    pub target: String,
    /// Databases and tables (`exclude_tables`: left out); nothing: every
    /// database but the servers' own.
    pub objects: Objects,
    /// A file whose first line is the password of a server whose URL has
    /// none (both may use it).
    pub password_file: Option<PathBuf>,
    /// Tables compared at once.
    pub threads: usize,
    /// Rows per chunk.
    pub chunk_rows: u64,
    /// Rows listed per table.
    pub max_rows: usize,
    /// How long the replica may take to reach the primary's position.
    pub wait: Duration,
}

impl CompareRequest {
    pub const DEFAULT_CHUNK_ROWS: u64 = CompareOptions::CHUNK_ROWS;
    pub const DEFAULT_MAX_ROWS: usize = CompareOptions::MAX_ROWS;

    pub fn new(source: impl Into<String>, target: impl Into<String>) -> CompareRequest {
        CompareRequest {
            source: source.into(),
            target: target.into(),
            objects: Objects::default(),
            password_file: None,
            threads: 1,
            chunk_rows: CompareOptions::CHUNK_ROWS,
            max_rows: CompareOptions::MAX_ROWS,
            wait: CompareOptions::WAIT,
        }
    }
}

/// Compares the two servers; `cancel` stops it between chunks.
pub fn compare(req: &CompareRequest, cancel: Option<&Cancel>) -> Result<Report> {
    let pw = req.password_file.as_deref();
    let source = MysqlSource::parse(&req.source, pw)?;
    let target = MysqlSource::parse(&req.target, pw)?;
    let o = &req.objects;
    let mut opts = CompareOptions::new(source, target);
    opts.selection = Selection {
        databases: o.databases.clone(),
        tables: Selection::table_names(&o.tables, "--tables")?,
        exclude: Selection::table_names(&o.exclude_tables, "--ignore-tables")?,
    };
    opts.threads = req.threads.max(1);
    opts.chunk_rows = req.chunk_rows.max(1);
    opts.max_rows = req.max_rows;
    opts.wait = req.wait;
    opts.cancel = cancel.map(Cancel::flag);
    Ok(my::compare(&opts)?)
}
