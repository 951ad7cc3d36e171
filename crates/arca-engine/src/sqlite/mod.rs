#![doc = include_str!("docs.md")]

mod backend;
mod config;
mod core;
mod restore;

pub use backend::{SqliteImage, SqliteInfo};
pub use config::{ImageOptions, ReadMethod, SqliteSource, DEFAULT_BUSY_TIMEOUT, EXPECTED};
pub use restore::{inspect, integrity_check, prepare_target};
