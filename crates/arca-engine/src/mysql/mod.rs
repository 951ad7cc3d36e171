#![doc = include_str!("docs.md")]

mod backend;
pub mod binlog;
mod compare;
mod config;
mod core;
mod encode;
mod rename;
pub mod replay;
mod restore;
mod schema;

pub use backend::{open_snapshot, plan, read_range, release, Consistency, Plan, Read, Snapshot};
pub use compare::{
    compare, ChunkDifference, CompareOptions, Mode, Problem, Report, RowDifference, RowKind,
    TableDifference,
};
pub use config::{MysqlSource, EXPECTED};
pub use core::{literal, qualified, quote, sql_error, Flavor, Session};
pub use rename::Renames;
pub use restore::{
    check_target, create_database, create_object, drop_existing, load_statement, split_create,
    SESSION,
};
pub use schema::{
    Column, Database, Object, ObjectKind, Schema, Selection, Sequence, Table, User,
    SYSTEM_DATABASES,
};

/// Reads the definitions `sel` selects, with the users with `users`.
pub fn read_schema(s: &mut Session, sel: &Selection, users: bool) -> Result<Schema, crate::Error> {
    schema::read(s, sel, users)
}
