mod common;
mod seaweed;

mod bad_input;
mod behaviour;
mod cli_forms;
mod concurrency;
mod damage;
mod kill;
mod object_storage;
