mod common;
mod postgres;
mod proxy;
mod seaweed;

mod bad_input;
mod behaviour;
mod cli_forms;
mod concurrency;
mod damage;
mod faults_s3;
mod kill;
mod object_storage;
mod pg_archive;
mod pg_bad_input;
mod pg_pitr;
mod pg_stream;
mod registry;
