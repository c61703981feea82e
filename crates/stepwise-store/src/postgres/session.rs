//! What every engine session asks of the server when it connects, so that a client
//! that goes silent (a partition, a frozen host, `SIGSTOP`) cannot hold row locks
//! for longer than a lease: the server ends its transaction, or the whole session,
//! on its own.
//!
//! The settings travel as startup options (`-c name=value`), so they are in force
//! from the first statement and cost no round trip. A setting already named in the
//! URL's `options` is left to the URL: the operator has the last word.

use crate::SessionOptions;
use sqlx::postgres::PgConnectOptions;
use std::time::Duration;

/// The lease assumed for a session of a process that holds none (the API server,
/// the command line): the worker's default.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// An engine transaction waits on the client only for the next statement of a
/// short, scripted exchange; longer than this and the client is gone or stuck.
const MAX_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(10);

/// The settings for one process's sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SessionSettings {
    /// `idle_in_transaction_session_timeout`: a transaction whose client stops
    /// talking ends (with its session) after this, releasing its locks.
    pub idle_in_transaction: Duration,
    /// `statement_timeout`, for a worker's sessions only: a statement stuck behind
    /// another session's lock, or running away, gives up within half a lease. The
    /// server and the command line run bulk statements (creating thousands of runs)
    /// that must not be cut short, and their waits end when the holder's do.
    pub statement: Option<Duration>,
    /// `tcp_keepalives_idle` / `_interval` / `_count`: the server probes an idle
    /// connection and drops it (ending its transaction) when the peer is gone, within
    /// about a lease instead of the kernel's two hours.
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
    /// `tcp_user_timeout`: the same for a connection with unacknowledged data, where
    /// keepalives do not run (a backend blocked sending to a vanished client).
    pub tcp_user_timeout: Duration,
    pub application_name: String,
}

impl SessionSettings {
    pub fn new(options: &SessionOptions) -> Self {
        let lease = options.lease.unwrap_or(DEFAULT_LEASE);
        // Probing starts after a third of a lease, then three probes a sixth apart:
        // a dead peer is noticed within about a lease (whole seconds: the server's
        // unit).
        let keepalive_idle = whole_seconds(lease / 3);
        let keepalive_interval = whole_seconds(lease / 6);
        Self {
            idle_in_transaction: (lease / 3).min(MAX_IDLE_IN_TRANSACTION),
            statement: options.lease.map(|l| l / 2),
            keepalive_idle,
            keepalive_interval,
            keepalive_count: 3,
            tcp_user_timeout: lease,
            application_name: options
                .application_name
                .clone()
                .unwrap_or_else(|| "stepwise".into()),
        }
    }

    /// The `(name, value)` pairs sent at connect, values in the server's units.
    pub fn gucs(&self) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let s = |d: Duration| d.as_secs().to_string();
        let mut gucs = vec![
            (
                "idle_in_transaction_session_timeout",
                ms(self.idle_in_transaction),
            ),
            ("tcp_keepalives_idle", s(self.keepalive_idle)),
            ("tcp_keepalives_interval", s(self.keepalive_interval)),
            ("tcp_keepalives_count", self.keepalive_count.to_string()),
            ("tcp_user_timeout", ms(self.tcp_user_timeout)),
        ];
        if let Some(statement) = self.statement {
            gucs.push(("statement_timeout", ms(statement)));
        }
        gucs
    }

    /// `options` with these settings added, except those its URL already names.
    pub fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        let given = options.get_options().unwrap_or_default().to_string();
        let missing: Vec<_> = self
            .gucs()
            .into_iter()
            .filter(|(name, _)| !names(&given, name))
            .collect();
        let options = if options.get_application_name().is_some() {
            options
        } else {
            options.application_name(&self.application_name)
        };
        if missing.is_empty() {
            options
        } else {
            options.options(missing)
        }
    }
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs_f64().ceil().max(1.0) as u64)
}

/// Whether a startup `options` string (`-c a=1 --b=2 -cc=3`) sets `name`.
fn names(options: &str, name: &str) -> bool {
    options.split_whitespace().any(|word| {
        let word = word.trim_start_matches('-');
        let word = word.strip_prefix('c').unwrap_or(word);
        word.split_once('=')
            .is_some_and(|(k, _)| k.replace('-', "_").eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_worker_session_gives_up_on_a_silent_client_within_its_lease() {
        let lease = Duration::from_secs(3);
        let s = SessionSettings::new(&SessionOptions {
            lease: Some(lease),
            application_name: Some("stepwise worker h:1".into()),
        });
        assert!(s.idle_in_transaction < lease);
        assert!(s.statement.unwrap() < lease);
        let keepalive = s.keepalive_idle + s.keepalive_interval * s.keepalive_count;
        assert!(keepalive <= lease + Duration::from_secs(1), "{keepalive:?}");
        let minimum = SessionSettings::new(&SessionOptions {
            lease: Some(Duration::from_secs(1)),
            application_name: None,
        });
        assert!(minimum.idle_in_transaction < Duration::from_secs(1));
        assert!(minimum.statement.unwrap() < Duration::from_secs(1));
    }

    #[test]
    fn a_process_without_a_lease_sets_no_statement_timeout() {
        let s = SessionSettings::new(&SessionOptions::default());
        assert_eq!(s.statement, None);
        assert_eq!(s.idle_in_transaction, Duration::from_secs(10));
        assert!(!s.gucs().iter().any(|(n, _)| *n == "statement_timeout"));
        assert_eq!(s.application_name, "stepwise");
    }

    #[test]
    fn settings_in_the_url_win() {
        let url = "postgres://u@h/db?options=-c%20idle_in_transaction_session_timeout%3D5s%20--statement-timeout%3D0&application_name=mine";
        let s = SessionSettings::new(&SessionOptions {
            lease: Some(Duration::from_secs(30)),
            application_name: Some("stepwise worker".into()),
        });
        let options = s.apply(PgConnectOptions::from_str(url).unwrap());
        let all = options.get_options().unwrap();
        assert_eq!(
            all.matches("idle_in_transaction_session_timeout").count(),
            1
        );
        assert_eq!(all.matches("statement").count(), 1, "{all}");
        assert!(all.contains("-c tcp_keepalives_idle=10"), "{all}");
        assert_eq!(options.get_application_name(), Some("mine"));
    }
}
