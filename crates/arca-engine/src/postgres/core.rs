//! What the PostgreSQL parts share: how an error is classified.

use crate::ErrorKind;

/// What a PostgreSQL error is, for deciding on it; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgCause {
    /// The server sent an error with this SQLSTATE.
    Sql(postgres::error::SqlState),
    /// No connection could be made, or it broke or went silent: refused,
    /// reset, closed by the server, no answer in time.
    Connection,
    /// Anything else: Arca's own check of the server (a standby,
    /// `wal_level = minimal`), a missing password, a protocol violation.
    Other,
}

impl PgCause {
    /// The cause of an error from the `postgres` client: its SQLSTATE if the
    /// server sent one, [`PgCause::Connection`] if the socket failed or closed.
    pub fn of(e: &postgres::Error) -> PgCause {
        if let Some(code) = e.code() {
            return PgCause::Sql(code.clone());
        }
        if e.is_closed() {
            return PgCause::Connection;
        }
        match std::error::Error::source(e).and_then(|c| c.downcast_ref::<std::io::Error>()) {
            Some(io) if is_connection_io(io.kind()) => PgCause::Connection,
            _ => PgCause::Other,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            PgCause::Sql(code) => sqlstate_kind(code),
            PgCause::Connection => ErrorKind::Temporary,
            PgCause::Other => ErrorKind::Permanent,
        }
    }

    /// The SQLSTATE the server sent, if it sent one.
    pub fn sqlstate(&self) -> Option<&postgres::error::SqlState> {
        match self {
            PgCause::Sql(code) => Some(code),
            _ => None,
        }
    }
}

/// Whether a SQLSTATE says the same request may succeed later: the server
/// shutting down, restarting or starting up, too many connections for now
/// (a sender of an earlier connection not gone yet), an object another
/// session holds (a replication slot still held by that sender), a broken
/// connection, a serialization failure or deadlock. Anything else (a wrong
/// password, a missing privilege or setting, WAL the server no longer has)
/// is permanent.
pub fn sqlstate_kind(code: &postgres::error::SqlState) -> ErrorKind {
    use postgres::error::SqlState as S;
    let temporary = [
        S::CONNECTION_EXCEPTION,
        S::CONNECTION_DOES_NOT_EXIST,
        S::CONNECTION_FAILURE,
        S::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        S::ADMIN_SHUTDOWN,
        S::CRASH_SHUTDOWN,
        S::CANNOT_CONNECT_NOW,
        S::IDLE_SESSION_TIMEOUT,
        S::TOO_MANY_CONNECTIONS,
        S::OBJECT_IN_USE,
        S::LOCK_NOT_AVAILABLE,
        S::T_R_SERIALIZATION_FAILURE,
        S::T_R_DEADLOCK_DETECTED,
    ];
    if temporary.contains(code) {
        ErrorKind::Temporary
    } else {
        ErrorKind::Permanent
    }
}

/// Whether a socket error is the connection's (refused, reset, timed out, a
/// Unix socket not there yet), which a server coming back cures.
pub(crate) fn is_connection_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::WouldBlock
            | K::Interrupted
            | K::UnexpectedEof
            | K::NotFound
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
    )
}

#[cfg(test)]
mod tests {
    use postgres::error::SqlState;

    use super::*;

    fn kind(code: &str) -> ErrorKind {
        sqlstate_kind(&SqlState::from_code(code))
    }

    #[test]
    fn sqlstates_that_waiting_cures_are_temporary() {
        for code in [
            "57P01", // admin_shutdown: the server stopping
            "57P02", // crash_shutdown
            "57P03", // cannot_connect_now: starting up or shutting down
            "08006", // connection_failure
            "08001", // unable to establish the connection
            "53300", // too_many_connections: a sender of ours not gone yet
            "55006", // object_in_use: the slot still held by that sender
            "40001", // serialization_failure
            "40P01", // deadlock_detected
        ] {
            assert_eq!(kind(code), ErrorKind::Temporary, "{code}");
        }
    }

    #[test]
    fn sqlstates_that_need_a_fix_are_permanent() {
        for code in [
            "28P01", // invalid_password
            "28000", // no pg_hba.conf entry, no such role
            "42501", // insufficient_privilege: no REPLICATION attribute
            "58P01", // WAL already removed
            "55000", // wal_level too low
            "3D000", // no such database
            "42601", // syntax error
            "57014", // query_canceled: our own statement_timeout
            "08P01", // protocol_violation
            "XX000", // internal_error
            "ZZ999", // a code this build does not know
        ] {
            assert_eq!(kind(code), ErrorKind::Permanent, "{code}");
        }
    }

    #[test]
    fn causes_decide_the_kind() {
        assert_eq!(PgCause::Connection.kind(), ErrorKind::Temporary);
        assert_eq!(PgCause::Other.kind(), ErrorKind::Permanent);
        let admin = PgCause::Sql(SqlState::ADMIN_SHUTDOWN);
        assert_eq!(admin.kind(), ErrorKind::Temporary);
        assert_eq!(admin.sqlstate(), Some(&SqlState::ADMIN_SHUTDOWN));
        assert_eq!(PgCause::Connection.sqlstate(), None);
    }
}
