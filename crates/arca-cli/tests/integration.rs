//! End-to-end tests: they drive the real `arca` binary on real files.

mod e2e;
