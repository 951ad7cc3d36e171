//! Schedules: when a plan runs next, in its time zone.
