//! StarRocks backup and restore statements, parsed for `arca sql`.
