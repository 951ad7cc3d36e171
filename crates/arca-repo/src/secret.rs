//! A string that must never be shown: passwords, secret keys, access keys.

use std::fmt;

/// Holds a credential. `Debug` and `Display` print `[SECRET]`; only
/// [`Secret::expose`] gives the value, at the one place that hands it on.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the call that needs it. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[SECRET]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[SECRET]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "[SECRET]");
        assert_eq!(format!("{s:?}"), "[SECRET]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([SECRET])");
        assert_eq!(s.expose(), "hunter2");
    }
}
