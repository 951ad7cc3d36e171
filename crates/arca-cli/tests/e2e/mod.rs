mod common;

mod backup_restore;
mod bad_input;
mod concurrency;
mod damage;
mod kill;
