//! StarRocks backup and restore statements, parsed for `arca sql`.
//!
//! `arca serve` accepts StarRocks' BACKUP / RESTORE SQL (`arca sql "…"`,
//! `POST /api/v1/sql`) so that StarRocks users can drive Arca the way they
//! drive StarRocks. This crate turns one such statement into a
//! [`Statement`]; running it is the daemon's business.
//!
//! ```
//! use arca_sql::{parse, Statement, TableRef};
//!
//! let stmt = parse(
//!     "BACKUP SNAPSHOT shop.daily_1 TO `s3-repo`
//!      ON (TABLE orders PARTITION (p202401, p202402), customers)
//!      PROPERTIES (\"timeout\" = \"7200\");",
//! )
//! .unwrap();
//! assert_eq!(
//!     stmt,
//!     Statement::Backup {
//!         db: Some("shop".into()),
//!         snapshot: "daily_1".into(),
//!         repository: "s3-repo".into(),
//!         tables: vec![
//!             TableRef {
//!                 name: "orders".into(),
//!                 alias: None,
//!                 partitions: vec!["p202401".into(), "p202402".into()],
//!             },
//!             TableRef { name: "customers".into(), alias: None, partitions: vec![] },
//!         ],
//!         properties: vec![("timeout".into(), "7200".into())],
//!     }
//! );
//!
//! let sql = "BACKUP SNAPSHOT shop.daily_1 INTO repo";
//! let err = parse(sql).unwrap_err();
//! assert_eq!(err.to_string(), "line 1, column 30: expected TO, found \"INTO\"");
//! assert_eq!(
//!     err.render(sql),
//!     "line 1, column 30: expected TO, found \"INTO\"\n\
//!      \x20 BACKUP SNAPSHOT shop.daily_1 INTO repo\n\
//!      \x20                              ^"
//! );
//! ```
//!
//! # What is accepted
//!
//! The grammar follows StarRocks' own (`StarRocks.g4`, 3.x), restricted to
//! what [`Statement`] can say:
//!
//! ```text
//! CREATE [READ ONLY] REPOSITORY name WITH BROKER [broker] ON LOCATION "uri" [PROPERTIES (...)]
//! SHOW REPOSITORIES
//! DROP REPOSITORY name
//! BACKUP [DATABASE db] SNAPSHOT [db.]name TO repo
//!        [ON ([TABLE] t [PARTITION (p, ...)], ...)] [PROPERTIES (...)]
//! SHOW BACKUP [FROM | IN db]
//! CANCEL BACKUP [FROM | IN db]
//! SHOW SNAPSHOT ON repo [WHERE SNAPSHOT = 'name' [AND TIMESTAMP = 'ts']]
//! RESTORE SNAPSHOT [db.]name FROM repo [DATABASE db]
//!        [ON ([TABLE] t [PARTITION (p, ...)] [AS alias], ...)]
//!        PROPERTIES ("backup_timestamp" = "...", ...)
//! SHOW RESTORE [FROM | IN db]
//! CANCEL RESTORE [FROM | IN db]
//! ```
//!
//! - Keywords are case-insensitive. Identifiers are bare words (letters,
//!   digits, `_`) or in backquotes (`` `my-repo` ``, a doubled backquote
//!   standing for one); a keyword used as a name where a keyword could
//!   also stand needs backquotes (`` ON (`table`) ``).
//! - Strings are in single or double quotes, with StarRocks' backslash
//!   escapes (`\n`, `\t`, `\r`, `\b`, `\0`, `\Z`, `\\`, `\'`, `\"`; `\%` and
//!   `\_` are kept as written; any other `\c` is `c`) and a doubled quote
//!   standing for one.
//! - `-- line` and `/* block */` comments are skipped; one trailing `;` is
//!   allowed, a second statement is not.
//! - `PARTITION p` and `PARTITIONS (...)` are StarRocks spellings and are
//!   accepted too; `TABLES` likewise for `TABLE`.
//! - Refused with an error saying so, though StarRocks has them: external
//!   catalogs, views, materialized views and functions (3.4+), `ALL ...`
//!   in ON, temporary partitions, `DATABASE a AS b` in RESTORE,
//!   `SNAPSHOT IN (...)`, `WHERE` / `LIKE` on SHOW BACKUP / SHOW RESTORE.
//! - Refused where StarRocks' analyzer would refuse them: an alias in
//!   BACKUP, a table or partition listed twice, an alias repeating a table
//!   name or alias, RESTORE without `"backup_timestamp"`, TIMESTAMP without
//!   SNAPSHOT in SHOW SNAPSHOT, a database in both `DATABASE a` and `b.snap`
//!   that differs. Also refused: a property key given twice (compared
//!   without regard to case), and empty locations, snapshot names,
//!   timestamps and property keys.
//!
//! # Untrusted input
//!
//! [`parse`] does not panic, does not recurse (the grammar has no nesting),
//! and does work linear in the statement's length, which is capped at
//! [`MAX_STATEMENT_BYTES`].

use std::fmt;

mod lexer;
mod parser;

/// The longest statement [`parse`] reads, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// One parsed statement.
///
/// `db: None` means the statement named no database: StarRocks would use
/// the session's current one. Names are as written (backquotes removed),
/// strings with their escapes undone, and properties in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `CREATE [READ ONLY] REPOSITORY name WITH BROKER [broker] ON LOCATION "…" [PROPERTIES (…)]`
    CreateRepository {
        name: String,
        location: String,
        broker: Option<String>,
        read_only: bool,
        properties: Vec<(String, String)>,
    },
    /// `SHOW REPOSITORIES`
    ShowRepositories,
    /// `DROP REPOSITORY name`
    DropRepository { name: String },
    /// `BACKUP SNAPSHOT [db.]name TO repo [ON (…)] [PROPERTIES (…)]`;
    /// `tables` empty means the whole database.
    Backup {
        db: Option<String>,
        snapshot: String,
        repository: String,
        tables: Vec<TableRef>,
        properties: Vec<(String, String)>,
    },
    /// `SHOW BACKUP [FROM db]`
    ShowBackup { db: Option<String> },
    /// `CANCEL BACKUP [FROM db]`
    CancelBackup { db: Option<String> },
    /// `SHOW SNAPSHOT ON repo [WHERE SNAPSHOT = '…' [AND TIMESTAMP = '…']]`;
    /// `timestamp` is only ever given with `snapshot`.
    ShowSnapshot {
        repository: String,
        snapshot: Option<String>,
        timestamp: Option<String>,
    },
    /// `RESTORE SNAPSHOT [db.]name FROM repo [ON (…)] PROPERTIES (…)`;
    /// `properties` always holds a non-empty `"backup_timestamp"`, and
    /// `tables` empty means the whole snapshot.
    Restore {
        db: Option<String>,
        snapshot: String,
        repository: String,
        tables: Vec<TableRef>,
        properties: Vec<(String, String)>,
    },
    /// `SHOW RESTORE [FROM db]`
    ShowRestore { db: Option<String> },
    /// `CANCEL RESTORE [FROM db]`
    CancelRestore { db: Option<String> },
}

/// A table in the ON list of BACKUP or RESTORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub name: String,
    /// `t AS alias`: the name to restore as (RESTORE only).
    pub alias: Option<String>,
    /// Empty means every partition.
    pub partitions: Vec<String>,
}

/// Why a statement was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong, naming what was expected and what was found.
    pub message: String,
    /// Byte offset into the statement (a char boundary, at most its length).
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl ParseError {
    fn at(sql: &str, offset: usize, message: String) -> Self {
        let offset = floor_char_boundary(sql, offset);
        let before = &sql[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        ParseError {
            message,
            offset,
            line: 1 + before.matches('\n').count(),
            column: 1 + before[line_start..].chars().count(),
        }
    }

    /// The error, then the statement's line it points into and a `^` under
    /// the column:
    ///
    /// ```text
    /// line 1, column 30: expected TO, found "INTO"
    ///   BACKUP SNAPSHOT shop.daily_1 INTO repo
    ///                                ^
    /// ```
    ///
    /// Long lines are cut around the column; tabs and other control
    /// characters are shown as spaces, and wide (CJK) characters counted
    /// twice, so that the caret lines up in a terminal.
    pub fn render(&self, sql: &str) -> String {
        const SIDE: usize = 60;
        let offset = floor_char_boundary(sql, self.offset);
        let line_start = sql[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = sql[offset..].find('\n').map_or(sql.len(), |i| offset + i);
        let before: Vec<char> = sql[line_start..offset].chars().collect();
        let after = &sql[offset..line_end];
        let mut shown = String::from("  ");
        let skip = before.len().saturating_sub(SIDE);
        if skip > 0 {
            shown.push('…');
        }
        let caret = before[skip..].iter().map(|&c| width(c)).sum::<usize>() + usize::from(skip > 0);
        let clean = |c: char| if c.is_control() { ' ' } else { c };
        shown.extend(before[skip..].iter().copied().map(clean));
        let mut rest = after.chars();
        shown.extend(rest.by_ref().take(SIDE).map(clean));
        if rest.next().is_some() {
            shown.push('…');
        }
        format!("{self}\n{}\n  {}^", shown.trim_end(), " ".repeat(caret))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Terminal columns taken by `c`: 2 for the wide (East Asian) blocks, 1
/// otherwise. Close enough to put a caret under the right character.
fn width(c: char) -> usize {
    match u32::from(c) {
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Parses one statement (an optional trailing `;` included).
pub fn parse(sql: &str) -> Result<Statement, ParseError> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(ParseError::at(
            sql,
            0,
            format!(
                "statement is {} bytes; arca sql reads at most {MAX_STATEMENT_BYTES}",
                sql.len()
            ),
        ));
    }
    parser::parse(sql).map_err(|e| ParseError::at(sql, e.offset, e.message))
}

// ---- result columns -----------------------------------------------------
//
// The column names StarRocks gives each SHOW statement's result, so that
// Arca's results look like StarRocks'. They follow the StarRocks 3.3 – 3.5
// documentation (SHOW BACKUP, SHOW RESTORE, SHOW SNAPSHOT, SHOW
// REPOSITORIES pages) and agree with the TITLE_NAMES / SNAPSHOT_ALL /
// SNAPSHOT_DETAIL lists of StarRocks' FE (ShowBackupStmt, ShowRestoreStmt,
// ShowSnapshotStmt, ShowRepositoriesStmt) of the same releases. Apache
// Doris, StarRocks' ancestor, has more (ReplicaAllocation, Type, ...):
// those are not StarRocks'.

/// `SHOW BACKUP`.
pub const SHOW_BACKUP_COLUMNS: &[&str] = &[
    "JobId",
    "SnapshotName",
    "DbName",
    "State",
    "BackupObjs",
    "CreateTime",
    "SnapshotFinishedTime",
    "UploadFinishedTime",
    "FinishedTime",
    "UnfinishedTasks",
    "Progress",
    "TaskErrMsg",
    "Status",
    "Timeout",
];

/// `SHOW RESTORE`.
pub const SHOW_RESTORE_COLUMNS: &[&str] = &[
    "JobId",
    "Label",
    "Timestamp",
    "DbName",
    "State",
    "AllowLoad",
    "ReplicationNum",
    "RestoreObjs",
    "CreateTime",
    "MetaPreparedTime",
    "SnapshotFinishedTime",
    "DownloadFinishedTime",
    "FinishedTime",
    "UnfinishedTasks",
    "Progress",
    "TaskErrMsg",
    "Status",
    "Timeout",
];

/// `SHOW SNAPSHOT ON repo` without WHERE.
pub const SHOW_SNAPSHOT_COLUMNS: &[&str] = &["Snapshot", "Timestamp", "Status"];

/// `SHOW SNAPSHOT ON repo WHERE SNAPSHOT = …`: Database and Details come
/// between Timestamp and Status.
pub const SHOW_SNAPSHOT_DETAIL_COLUMNS: &[&str] =
    &["Snapshot", "Timestamp", "Database", "Details", "Status"];

/// `SHOW REPOSITORIES`.
pub const SHOW_REPOSITORIES_COLUMNS: &[&str] = &[
    "RepoId",
    "RepoName",
    "CreateTime",
    "IsReadOnly",
    "Location",
    "Broker",
    "ErrMsg",
];

impl Statement {
    /// The result columns StarRocks gives this statement, if it is a SHOW.
    pub fn columns(&self) -> Option<&'static [&'static str]> {
        match self {
            Statement::ShowBackup { .. } => Some(SHOW_BACKUP_COLUMNS),
            Statement::ShowRestore { .. } => Some(SHOW_RESTORE_COLUMNS),
            Statement::ShowRepositories => Some(SHOW_REPOSITORIES_COLUMNS),
            Statement::ShowSnapshot { snapshot: None, .. } => Some(SHOW_SNAPSHOT_COLUMNS),
            Statement::ShowSnapshot { .. } => Some(SHOW_SNAPSHOT_DETAIL_COLUMNS),
            _ => None,
        }
    }
}
