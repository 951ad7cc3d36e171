//! `arca serve`: the daemon.
