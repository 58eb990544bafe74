//! Why a connection attempt (or a live connection) failed, decided in one
//! place for the pool's metrics and `dashctl db` reports; each maps the
//! class to its own vocabulary.

use std::io;

use tokio_postgres::error::SqlState;

/// The class of a connection failure, from the most structured signal the
/// error carries: its SQLSTATE, else the `io::ErrorKind` in its cause chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnFailure {
    /// Nothing listens on the port: TCP connection refused.
    Refused,
    /// The peer reset the connection.
    Reset,
    /// A connect or socket deadline passed with no answer.
    Timeout,
    /// Authentication or authorization rejected (28P01, 28000).
    Auth,
    /// No free connection slot on the server (53300).
    TooManyConnections,
    /// The server is starting up or shutting down (57P03).
    NotAccepting,
    /// The database does not exist (3D000).
    NoDatabase,
    /// One of the server's own timeouts ended the statement or session
    /// (statement_timeout, lock_timeout, the idle session timeouts).
    ServerTimeout,
    /// The server answered with any other error.
    Server,
    /// No class applies: DNS, TLS, protocol, a closed connection.
    Other,
}

impl ConnFailure {
    /// Classifies a driver error.
    pub fn of(e: &tokio_postgres::Error) -> ConnFailure {
        classify(e.code(), io_kind_in_chain(e))
    }

    /// Classifies a plain socket error (a bare TCP connect).
    pub fn of_io(e: &io::Error) -> ConnFailure {
        classify(None, Some(e.kind()))
    }
}

/// The kind of the first `io::Error` among `e` and its causes.
fn io_kind_in_chain(e: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        next = err.source();
    }
    None
}

fn classify(code: Option<&SqlState>, io_kind: Option<io::ErrorKind>) -> ConnFailure {
    if let Some(code) = code {
        return of_sqlstate(code);
    }
    match io_kind {
        Some(io::ErrorKind::ConnectionRefused) => ConnFailure::Refused,
        Some(io::ErrorKind::ConnectionReset) => ConnFailure::Reset,
        // tokio-postgres reports its connect_timeout as an io TimedOut.
        Some(io::ErrorKind::TimedOut) => ConnFailure::Timeout,
        _ => ConnFailure::Other,
    }
}

fn of_sqlstate(code: &SqlState) -> ConnFailure {
    match *code {
        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            ConnFailure::Auth
        }
        SqlState::TOO_MANY_CONNECTIONS => ConnFailure::TooManyConnections,
        SqlState::CANNOT_CONNECT_NOW => ConnFailure::NotAccepting,
        SqlState::INVALID_CATALOG_NAME => ConnFailure::NoDatabase,
        SqlState::QUERY_CANCELED
        | SqlState::LOCK_NOT_AVAILABLE
        | SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
        | SqlState::IDLE_SESSION_TIMEOUT => ConnFailure::ServerTimeout,
        _ => ConnFailure::Server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io::ErrorKind;

    #[test]
    fn each_class_from_its_structured_signal() {
        let cases: &[(Option<SqlState>, Option<ErrorKind>, ConnFailure)] = &[
            (
                None,
                Some(ErrorKind::ConnectionRefused),
                ConnFailure::Refused,
            ),
            (None, Some(ErrorKind::ConnectionReset), ConnFailure::Reset),
            (None, Some(ErrorKind::TimedOut), ConnFailure::Timeout),
            (Some(SqlState::INVALID_PASSWORD), None, ConnFailure::Auth),
            (
                Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
                None,
                ConnFailure::Auth,
            ),
            (
                Some(SqlState::TOO_MANY_CONNECTIONS),
                None,
                ConnFailure::TooManyConnections,
            ),
            (
                Some(SqlState::CANNOT_CONNECT_NOW),
                None,
                ConnFailure::NotAccepting,
            ),
            (
                Some(SqlState::INVALID_CATALOG_NAME),
                None,
                ConnFailure::NoDatabase,
            ),
            (
                Some(SqlState::QUERY_CANCELED),
                None,
                ConnFailure::ServerTimeout,
            ),
            (
                Some(SqlState::LOCK_NOT_AVAILABLE),
                None,
                ConnFailure::ServerTimeout,
            ),
            (
                Some(SqlState::IDLE_SESSION_TIMEOUT),
                None,
                ConnFailure::ServerTimeout,
            ),
            (
                Some(SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT),
                None,
                ConnFailure::ServerTimeout,
            ),
            (Some(SqlState::ADMIN_SHUTDOWN), None, ConnFailure::Server),
            (None, Some(ErrorKind::UnexpectedEof), ConnFailure::Other),
            (None, None, ConnFailure::Other),
        ];
        for (code, kind, want) in cases {
            assert_eq!(classify(code.as_ref(), *kind), *want, "{code:?} {kind:?}");
        }
    }

    #[test]
    fn a_sqlstate_wins_over_the_socket() {
        let got = classify(Some(&SqlState::INVALID_PASSWORD), Some(ErrorKind::TimedOut));
        assert_eq!(got, ConnFailure::Auth);
    }

    #[test]
    fn a_bare_socket_error_is_classified_by_its_kind() {
        let e = io::Error::from(ErrorKind::ConnectionRefused);
        assert_eq!(ConnFailure::of_io(&e), ConnFailure::Refused);
        let e = io::Error::from(ErrorKind::HostUnreachable);
        assert_eq!(ConnFailure::of_io(&e), ConnFailure::Other);
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_refused() {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1").port(port).user("nobody");
        let Err(e) = c.connect(tokio_postgres::NoTls).await else {
            panic!("connected to a closed port");
        };
        assert_eq!(ConnFailure::of(&e), ConnFailure::Refused, "{e}");
    }
}
