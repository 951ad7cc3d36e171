//! Retention: which backups a policy keeps, and why.
